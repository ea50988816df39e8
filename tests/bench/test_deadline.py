"""The benchmarks' deadlines: a wait that runs out fails naming what it waited for."""

from __future__ import annotations

import time

import pytest

from bench.deadline import BenchTimeout, Deadline, wait_until, watchdog


def test_deadline_names_what_it_waited_for_and_the_progress_seen() -> None:
    deadline = Deadline(0.0, "the writer to apply 10 events")
    with pytest.raises(BenchTimeout, match=r"waiting for the writer to apply 10 events \(3 of 10 seen\)"):
        deadline.check("3 of 10 seen")


def test_wait_until_returns_once_the_condition_holds() -> None:
    calls = iter([False, False, True])
    wait_until(lambda: next(calls), 5, "a condition", interval=0.001)


def test_wait_until_gives_up_at_its_deadline() -> None:
    with pytest.raises(BenchTimeout, match="a topic to appear"):
        wait_until(lambda: False, 0.05, "a topic to appear", interval=0.01)


def test_watchdog_interrupts_a_benchmark_that_waits_without_a_deadline() -> None:
    t0 = time.monotonic()
    with pytest.raises(BenchTimeout, match="bench_stuck ran past its budget"), watchdog("bench_stuck", 0.2):
        while True:
            time.sleep(0.05)
    assert time.monotonic() - t0 < 5


def test_watchdog_is_disarmed_after_a_benchmark_that_finished() -> None:
    with watchdog("bench_quick", 0.2):
        pass
    time.sleep(0.3)  # no alarm fires any more

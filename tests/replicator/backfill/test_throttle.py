"""Backfill pacing: the rows/s cap holds, slow queries and lag back off, health recovers."""

from __future__ import annotations

from replicator.backfill.throttle import Throttle


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def test_cap_limits_the_average_rate() -> None:
    clock = FakeClock()
    t = Throttle(max_rows_per_s=1000, clock=clock, sleep=clock.sleep)
    for _ in range(20):
        clock.now += 0.01  # each chunk takes 10 ms to read
        t.wait(500)
    assert 10_000 / clock.now <= 1000 * 1.001


def test_no_cap_and_healthy_queries_never_sleep() -> None:
    clock = FakeClock()
    t = Throttle(max_rows_per_s=0, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        assert t.observe(query_s=0.01, lag_s=0.0) is None
        t.wait(1000)
    assert clock.slept == []


def test_slow_query_doubles_the_pause_up_to_the_maximum() -> None:
    t = Throttle(max_rows_per_s=0, max_query_s=0.5, min_pause_s=0.1, max_pause_s=1.0)
    pauses = []
    for _ in range(6):
        assert t.observe(query_s=2.0, lag_s=None) is not None
        pauses.append(t.pause_s)
    assert pauses == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


def test_lag_backs_off_and_health_decays_the_pause_to_zero() -> None:
    t = Throttle(max_rows_per_s=0, max_lag_s=5, min_pause_s=0.1)
    reason = t.observe(query_s=0.01, lag_s=30)
    assert reason is not None and "lag" in reason
    t.observe(query_s=0.01, lag_s=60)
    assert t.pause_s == 0.2
    for _ in range(3):
        t.observe(query_s=0.01, lag_s=0)
    assert t.pause_s == 0.0

"""The watcher on both real stores: every change is delivered, in order.

The one-second latency contract is measured by ``make bench`` (bench/bench_phase.py), not
asserted here: these machines are shared and a timed assertion would test the load.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import pytest

from replicator.control import ControlStore, PhaseState, open_control_store
from replicator.control.memory import MemoryControlStore
from replicator.phase import FixedClock, PhaseController, PhaseWatcher
from replicator.phase.gates import GateResult
from replicator.settings import Settings

DELIVERY_WAIT_S = 15.0  # generous: this checks delivery, the benchmark measures latency


class NoGates:
    def check(self, target: int, state: PhaseState | None = None) -> list[GateResult]:
        return []


@pytest.fixture(params=["redis", "dynamodb"])
def backend_settings(
    request: pytest.FixtureRequest, settings: Settings, redis_client: Any, dynamodb: Any,
) -> Settings:
    control = settings.control.model_copy(update={"backend": request.param})
    return settings.model_copy(update={"control": control})


@pytest.fixture()
def watched(backend_settings: Settings) -> Iterator[tuple[ControlStore, queue.Queue[PhaseState]]]:
    seen: queue.Queue[PhaseState] = queue.Queue()
    with open_control_store(backend_settings) as own, PhaseWatcher(own, seen.put), \
            open_control_store(backend_settings) as writer:
        yield writer, seen


@pytest.mark.integration
def test_each_change_is_delivered_in_order(
    watched: tuple[ControlStore, queue.Queue[PhaseState]],
) -> None:
    writer, seen = watched
    ctl = PhaseController(writer, NoGates())
    for n in (2, 3, 1):
        ctl.set_migration_phase(n, reason=f"to {n}", actor="t")
        got = seen.get(timeout=DELIVERY_WAIT_S)
        assert (got.phase, got.updated_by) == (n, "t")


def test_a_failing_callback_does_not_stop_the_watch() -> None:
    store = MemoryControlStore()
    seen: queue.Queue[PhaseState] = queue.Queue()

    def flaky(state: PhaseState) -> None:
        seen.put(state)
        if state.epoch == 1:
            raise RuntimeError("application bug")

    ctl = PhaseController(store, NoGates(), FixedClock(0))
    with PhaseWatcher(store, flaky, wait_s=0.1):
        ctl.set_migration_phase(2, reason="a", actor="t")
        assert seen.get(timeout=5).epoch == 1
        ctl.set_migration_phase(3, reason="b", actor="t")
        assert seen.get(timeout=5).epoch == 2

"""Two processes race on the phase compare-and-set: in every round exactly one wins."""

from __future__ import annotations

import multiprocessing

import pytest

from replicator.control import ControlStore
from replicator.settings import Settings
from tests.replicator.control.race_worker import race

pytestmark = pytest.mark.integration

ROUNDS = 100


def test_of_two_concurrent_changes_exactly_one_wins_every_round(
    control_settings: Settings, store: ControlStore,
) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2, timeout=60)
    results = ctx.Queue()
    procs = [ctx.Process(target=race, args=(control_settings, ROUNDS, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    outcome = dict(results.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    a, b = outcome.values()
    assert sorted(a + b) == list(range(1, ROUNDS + 1)), "each epoch must be won by exactly one process"
    assert store.get_phase().epoch == ROUNDS
    history = store.history()
    assert [h.epoch for h in history] == list(range(1, ROUNDS + 1))
    assert [h.actor for h in history] == [next(w for w, e in outcome.items() if n in e)
                                          for n in range(1, ROUNDS + 1)]

"""A process that races another on the control store's compare-and-set (spawned by test_cas_race)."""

from __future__ import annotations

import os
from typing import Any

from replicator.control import EpochConflict, HistoryEntry, PhaseState, open_control_store
from replicator.settings import Settings


def race(settings: Settings, rounds: int, barrier: Any, results: Any) -> None:
    """Each round: both read the same epoch, meet, then both try to write the next one."""
    me = f"pid{os.getpid()}"
    wins: list[int] = []
    with open_control_store(settings) as store:
        for _ in range(rounds):
            barrier.wait()
            cur = store.get_phase()
            barrier.wait()
            new = PhaseState(phase=cur.epoch % 5 + 1, epoch=cur.epoch + 1, updated_by=me, reason="race")
            try:
                store.compare_and_set(new, HistoryEntry(
                    epoch=new.epoch, at=0, actor=me, from_phase=cur.phase, to_phase=new.phase, reason="race",
                ))
                wins.append(new.epoch)
            except EpochConflict:
                pass
    results.put((me, wins))

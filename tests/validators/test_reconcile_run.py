"""reconcile --resume: which tables an interrupted run had finished (pure, in-memory store)."""

from __future__ import annotations

from replicator.testing import MemoryControlStore
from validators.reconcile_service import RunMarker


def test_a_resumed_run_of_the_same_tables_skips_the_finished_ones() -> None:
    store = MemoryControlStore()
    first = RunMarker(store, ["s.a", "s.b"], resume=False)
    first.finish("s.a", {"table": "s.a", "ok": True})  # then the process died before s.b
    again = RunMarker(store, ["s.a", "s.b"], resume=True)
    assert again.done("s.a") == {"table": "s.a", "ok": True} and again.done("s.b") is None


def test_another_table_list_or_no_resume_starts_over() -> None:
    store = MemoryControlStore()
    RunMarker(store, ["s.a", "s.b"], resume=False).finish("s.a", {"table": "s.a", "ok": True})
    assert RunMarker(store, ["s.a"], resume=True).done("s.a") is None
    RunMarker(store, ["s.a", "s.b"], resume=False).finish("s.b", {"table": "s.b", "ok": False})
    assert RunMarker(store, ["s.a", "s.b"], resume=True).done("s.a") is None

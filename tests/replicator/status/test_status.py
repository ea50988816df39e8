"""``replicator status``: the figures from the control store and Kafka, and one rendered frame."""

from __future__ import annotations

import time
from collections.abc import Sequence

from rich.console import Console

from replicator.control import HistoryEntry, PhaseState, names
from replicator.control.memory import MemoryControlStore
from replicator.errors import ProbeError
from replicator.phase.gates import GateResult, soak_time
from replicator.settings import load_settings
from replicator.status.figures import gather
from replicator.status.render import History, frame, sparkline
from replicator.status.sources import TopicOffsets, parse_metrics

SETTINGS = load_settings(tables=[{"source": "shop.users"}, {"source": "shop.orders"}])


class FakeOffsets:
    def __init__(self, got: dict[str, TopicOffsets] | None = None, error: str = "") -> None:
        self.got, self.error = got or {}, error

    def offsets(self, topics: Sequence[str], groups: Sequence[str]) -> dict[str, TopicOffsets]:
        if self.error:
            raise ProbeError(self.error)
        return {t: o for t, o in self.got.items() if t in topics}


def store_in_phase_3(now: float) -> MemoryControlStore:
    store = MemoryControlStore()
    store.compare_and_set(PhaseState(phase=3, epoch=1, updated_at=now - 100, updated_by="alice",
                                     reason="backfill done"),
                          HistoryEntry(1, now - 100, "alice", 1, 3, "backfill done"))
    return store


def gates_of(now: float) -> object:
    def check(target: int, state: PhaseState) -> list[GateResult]:
        return [soak_time(now, state.updated_at, 600, state.phase)]
    return check


def test_the_figures_are_what_the_stores_hold() -> None:
    now = time.time()
    store = store_in_phase_3(now)
    store.incr_many({names.DUAL_WRITE_APPLIED: 990, names.DUAL_WRITE_FAILED: 10,
                     names.VALIDATION_PASSED: 999, names.VALIDATION_FAILED: 1}, at=now)
    store.put_marker(names.READER_HEARTBEAT, {"ts": now - 2, "lag_s": 0.4, "position": "mysql-bin.000001:4"})
    store.put_marker(names.WRITER_HEARTBEAT, {"ts": now - 1, "group": "cdc.writer"})
    store.put_marker(names.validator_marker("v1"), {"ts": now - 1, "member": "v1", "failed": 1})
    store.put_marker(names.backfill_marker("shop.users"),
                     {"done": 50, "total_estimate": 200, "complete": False})
    store.put_marker("client.lease.api.h.1.abc", {"name": "api", "host": "h", "pid": 1,
                                                  "expires_at": now + 3, "acked_epoch": 0, "phase": 3})
    offsets = FakeOffsets({"cdc.shop.users": TopicOffsets(100, {"cdc.writer": 4, "cdc.validator": 100}),
                           "cdc.__deadletter": TopicOffsets(2, {})})
    doc = gather(SETTINGS, store, offsets, gates_of(now), now)  # type: ignore[arg-type]
    assert doc["phase"]["phase"] == 3 and doc["phase"]["updated_by"] == "alice"
    assert doc["phase"]["flags"]["validation_enabled"] is True
    assert doc["gates"]["next_phase"] == 4 and doc["gates"]["results"][0]["remaining_s"] == 500
    assert doc["rates"]["counts"][names.DUAL_WRITE_APPLIED] == 990
    assert doc["rates"]["dual_write"]["success_rate"] == 0.99
    assert doc["rates"]["validation"]["error_rate"] == 0.001
    assert doc["reader"]["alive"] and doc["reader"]["lag_s"] == 0.4
    assert doc["writer"]["alive"] and doc["validators"][0]["member"] == "v1"
    assert doc["backfill"] == {"shop.users": {"done": 50, "total_estimate": 200, "complete": False}}
    assert [c["name"] for c in doc["clients"] if c["live"]] == ["api"]
    assert doc["kafka"]["tables"]["shop.users"] == {"topic": "cdc.shop.users", "exists": True,
                                                    "messages": 100, "writer_lag": 4, "validator_lag": 100}
    assert doc["kafka"]["tables"]["shop.orders"]["exists"] is False
    assert doc["kafka"]["dead_letters"] == 2


def test_kafka_down_leaves_the_rest_of_the_screen() -> None:
    now = time.time()
    doc = gather(SETTINGS, store_in_phase_3(now), FakeOffsets(error="no broker"), gates_of(now), now)  # type: ignore[arg-type]
    assert "no broker" in doc["kafka"]["error"] and doc["phase"]["phase"] == 3


def test_a_frame_shows_phase_gates_lag_and_clients() -> None:
    now = time.time()
    store = store_in_phase_3(now)
    store.put_marker(names.READER_HEARTBEAT, {"ts": now, "lag_s": 1.5})
    store.put_marker(names.reconcile_marker("shop.users"), {
        "table": "shop.users", "stage": "mysql", "done": 3, "total": 8, "at": now, "finished": False})
    store.put_marker("client.lease.api.h.1.abc", {"name": "api", "host": "h", "pid": 1,
                                                  "expires_at": now + 3, "acked_epoch": 0, "phase": 3})
    offsets = FakeOffsets({"cdc.shop.users": TopicOffsets(10, {"cdc.writer": 3})})
    doc = gather(SETTINGS, store, offsets, gates_of(now), now)  # type: ignore[arg-type]
    history = History()
    history.add(doc)
    console = Console(width=140, record=True)
    console.print(frame(doc, history))
    text = console.export_text()
    for expected in ("Phase 3 · Validation", "by alice", "backfill done", "soak_time", "500 s",
                     "lag 1.5 s", "shop.users", "≈3", "application clients (1 live)", "api", "reconcile",
                     "3/8", "running"):
        assert expected in text, expected


def test_sparklines_scale_to_the_largest_value() -> None:
    assert sparkline([0, 1, 4, None, 2]) == "▁▃█ ▅"
    assert sparkline([0, 0]) == "▁▁"


def test_metrics_pages_are_summed_over_labels() -> None:
    page = ('# TYPE replicator_writer_items_applied_total counter\n'
            'replicator_writer_items_applied_total{table="a"} 3\n'
            'replicator_writer_items_applied_total{table="b"} 4\n'
            'process_cpu_seconds_total 9\n')
    assert parse_metrics(page) == {"replicator_writer_items_applied_total": 7.0}

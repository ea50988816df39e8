"""The gate checker over an in-memory store with an injected clock: windows and their edges."""

from __future__ import annotations

import pytest

from replicator.control import HistoryEntry, PhaseState, names
from replicator.phase import gates
from replicator.phase.clock import FixedClock
from replicator.phase.probes import GateChecker
from replicator.settings import Settings, TableMapping
from replicator.testing import MemoryControlStore, MemoryOffsetProbe, MemoryTableProbe

NOW = 1_800_000_000.0
HOUR = 3600.0


def make_settings(**gate_overrides: float) -> Settings:
    return Settings(
        kafka={"topic_prefix": "mig"}, dynamodb={"table_prefix": "p-"},
        tables=(TableMapping(source="shop.users", target="users"), TableMapping(source="shop.orders")),
        gates={"window_2_3_s": 24 * HOUR, "window_3_4_s": 24 * HOUR, "window_4_5_s": 48 * HOUR,
               **gate_overrides},
    )


def checker(
    store: MemoryControlStore, settings: Settings | None = None, *, tables: set[str] | None = None,
    offsets: MemoryOffsetProbe | None = None, now: float = NOW,
) -> GateChecker:
    return GateChecker(settings or make_settings(), store, FixedClock(now),
                       MemoryTableProbe(tables if tables is not None else {"p-users", "p-orders"}),
                       offsets or MemoryOffsetProbe())


def by_gate(results: list[gates.GateResult]) -> dict[str, gates.GateResult]:
    return {r.gate: r for r in results}


def in_phase(store: MemoryControlStore, phase: int, since: float) -> PhaseState:
    s = PhaseState(phase=phase, epoch=1, updated_at=since)
    store.compare_and_set(s, HistoryEntry(epoch=1, at=since, actor="t", from_phase=1, to_phase=phase,
                                          reason="setup"))
    return s


def test_gate_1_2_checks_the_prefixed_target_tables() -> None:
    store = MemoryControlStore()
    store.put_marker(names.WRITER_HEARTBEAT, {"ts": NOW - 5, "group": "mig.writer"})
    r = by_gate(checker(store, tables={"p-users"}).check(2))
    assert not r[gates.TABLES_EXIST].passed and "p-orders" in r[gates.TABLES_EXIST].detail
    assert r[gates.WRITER_CONNECTED].passed


def test_gate_1_2_passes_with_tables_and_a_fresh_writer() -> None:
    store = MemoryControlStore()
    store.put_marker(names.WRITER_HEARTBEAT, {"ts": NOW - 60, "group": "mig.writer"})
    assert all(r.passed for r in checker(store).check(2))


def test_gate_2_3_counts_exactly_99_percent_inside_the_window_as_passing() -> None:
    store = MemoryControlStore()
    in_phase(store, 2, NOW - 24 * HOUR)
    store.put_marker(names.BACKFILL_COMPLETE, {"complete": True, "tables": ["shop.users", "shop.orders"]})
    store.incr(names.DUAL_WRITE_APPLIED, 990, at=NOW - 24 * HOUR)  # first minute of the window
    store.incr(names.DUAL_WRITE_FAILED, 10, at=NOW)
    store.incr(names.DUAL_WRITE_FAILED, 500, at=NOW - 24 * HOUR - 60)  # a minute before the window
    results = checker(store).check(3)
    assert all(r.passed for r in results), results
    assert by_gate(results)[gates.DUAL_WRITE_SUCCESS].value == pytest.approx(0.99)


def test_gate_2_3_fails_when_failures_inside_the_window_drop_success_below_99_percent() -> None:
    store = MemoryControlStore()
    in_phase(store, 2, NOW - 24 * HOUR)
    store.incr(names.DUAL_WRITE_APPLIED, 989, at=NOW - HOUR)
    store.incr(names.DUAL_WRITE_FAILED, 11, at=NOW - HOUR)
    assert not by_gate(checker(store).check(3))[gates.DUAL_WRITE_SUCCESS].passed


def test_gate_2_3_with_no_writes_in_the_window_fails() -> None:
    store = MemoryControlStore()
    in_phase(store, 2, NOW - 48 * HOUR)
    store.incr(names.DUAL_WRITE_APPLIED, 1000, at=NOW - 25 * HOUR)  # only before the window
    r = by_gate(checker(store).check(3))[gates.DUAL_WRITE_SUCCESS]
    assert not r.passed and r.measured == "no dual writes"


def test_gate_2_3_needs_the_phase_to_have_soaked_for_the_window() -> None:
    store = MemoryControlStore()
    in_phase(store, 2, NOW - 24 * HOUR + 1)
    assert not by_gate(checker(store).check(3))[gates.SOAK_TIME].passed


def test_gate_windows_follow_the_settings() -> None:
    store = MemoryControlStore()
    in_phase(store, 2, NOW - 600)
    store.incr(names.DUAL_WRITE_APPLIED, 100, at=NOW - 300)
    store.incr(names.DUAL_WRITE_FAILED, 100, at=NOW - 900)  # outside a 10-minute window
    results = by_gate(checker(store, make_settings(window_2_3_s=600)).check(3))
    assert results[gates.SOAK_TIME].passed and results[gates.DUAL_WRITE_SUCCESS].passed


def test_gate_3_4_fails_at_exactly_0_1_percent_validation_errors() -> None:
    store = MemoryControlStore()
    in_phase(store, 3, NOW - 24 * HOUR)
    store.incr(names.VALIDATION_PASSED, 999, at=NOW - HOUR)
    store.incr(names.VALIDATION_FAILED, 1, at=NOW - HOUR)
    assert not by_gate(checker(store).check(4))[gates.VALIDATION_ERROR_RATE].passed


def test_gate_3_4_passes_below_0_1_percent_with_enough_validations() -> None:
    store = MemoryControlStore()
    in_phase(store, 3, NOW - 24 * HOUR)
    store.incr(names.VALIDATION_PASSED, 1000, at=NOW - HOUR)
    store.incr(names.VALIDATION_FAILED, 1, at=NOW - HOUR)
    assert all(r.passed for r in checker(store).check(4))


def test_gate_4_5_reads_the_writer_groups_lag_on_every_table_topic() -> None:
    store = MemoryControlStore()
    in_phase(store, 4, NOW - 48 * HOUR)
    store.incr(names.DYNAMODB_READ_OK, 5000, at=NOW - HOUR)
    store.put_marker(names.READER_HEARTBEAT, {"ts": NOW - 1, "lag_s": 0, "position": "x"})
    offsets = MemoryOffsetProbe()
    assert all(r.passed for r in checker(store, offsets=offsets).check(5))
    assert offsets.asked == [("mig.writer", ["mig.shop.users", "mig.shop.orders"])]


def test_gate_4_5_fails_while_the_writer_is_further_behind_than_the_switch_drains() -> None:
    store = MemoryControlStore()
    in_phase(store, 4, NOW - 48 * HOUR)
    store.incr(names.DYNAMODB_READ_OK, 5000, at=NOW - HOUR)
    store.put_marker(names.READER_HEARTBEAT, {"ts": NOW - 1, "lag_s": 0, "position": "x"})
    offsets = MemoryOffsetProbe({"mig.shop.orders": 201})
    r = by_gate(checker(store, offsets=offsets).check(5))[gates.REPLICATION_LAG]
    assert not r.passed and "mig.shop.orders (201)" in r.detail


def test_gate_4_5_allows_the_lag_of_live_writes_that_the_switch_drains_under_its_freeze() -> None:
    store = MemoryControlStore()
    in_phase(store, 4, NOW - 48 * HOUR)
    store.put_marker(names.READER_HEARTBEAT, {"ts": NOW - 1, "lag_s": 0.4, "position": "x"})
    offsets = MemoryOffsetProbe({"mig.shop.orders": 7})
    r = by_gate(checker(store, offsets=offsets).check(5))[gates.REPLICATION_LAG]
    assert r.passed and "drained to zero under the switch's write freeze" in r.threshold
    store.put_marker(names.READER_HEARTBEAT, {"ts": NOW - 1, "lag_s": 1.5, "position": "x"})
    r = by_gate(checker(store, offsets=MemoryOffsetProbe()).check(5))[gates.REPLICATION_LAG]
    assert not r.passed and "reader lag 1.5" in r.measured


def test_gate_4_5_fails_with_the_reason_when_kafka_cannot_be_read() -> None:
    store = MemoryControlStore()
    in_phase(store, 4, NOW - 48 * HOUR)
    store.put_marker(names.READER_HEARTBEAT, {"ts": NOW - 1, "lag_s": 0, "position": "x"})
    offsets = MemoryOffsetProbe(error="Kafka unreachable: x")
    r = by_gate(checker(store, offsets=offsets).check(5))[gates.REPLICATION_LAG]
    assert not r.passed and "Kafka unreachable" in r.detail


def test_phase_1_has_no_gates() -> None:
    assert checker(MemoryControlStore()).check(1) == []


def test_gate_4_5_fails_when_the_writer_would_not_drain_its_backlog_within_half_the_pause() -> None:
    store = MemoryControlStore()
    in_phase(store, 4, NOW - 48 * HOUR)
    store.put_marker(names.READER_HEARTBEAT, {"ts": NOW - 1, "lag_s": 0, "position": "x"})
    store.put_marker(names.WRITER_HEARTBEAT, {"ts": NOW - 1, "group": "g", "events_per_s": 40.0})
    lag = gates.REPLICATION_LAG
    r = by_gate(checker(store, offsets=MemoryOffsetProbe({"mig.shop.orders": 150})).check(5))[lag]
    assert not r.passed and "~3.8 s to drain at 40 events/s" in r.measured  # 2 s pause: 1 s to drain
    r = by_gate(checker(store, offsets=MemoryOffsetProbe({"mig.shop.orders": 30})).check(5))[lag]
    assert r.passed and "drained at its pace within 1 s" in r.threshold


def test_a_model_with_embedded_tables_checks_its_shared_table_once() -> None:
    settings = Settings(dynamodb={"table_prefix": "p-"}, tables=(
        {"source": "shop.users", "target": "shop", "key": {"pk": "USER#{id}", "sk": "#META"}},
        {"source": "shop.orders", "target": "shop", "key": {"pk": "USER#{user_id}", "sk": "ORDER#{id}"}},
        {"source": "shop.items", "embed": {"parent": "shop.orders", "as": "items",
                                            "on": {"order_id": "id", "user_id": "user_id"}}}))
    store = MemoryControlStore()
    in_phase(store, 1, NOW)
    two = by_gate(checker(store, settings, tables={"p-shop"}).check(2))
    assert two[gates.TABLES_EXIST].passed, two[gates.TABLES_EXIST]  # one shared table, none for the embedded

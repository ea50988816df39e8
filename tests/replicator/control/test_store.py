"""Both control stores on the real servers: phase CAS, history, counters, markers, errors."""

from __future__ import annotations

import time
from typing import Any

import pytest

from replicator.control import (
    ControlStore,
    ControlStoreUnavailable,
    EpochConflict,
    HistoryEntry,
    PhaseState,
    control_table_name,
    names,
    open_control_store,
)
from replicator.settings import Settings

pytestmark = pytest.mark.integration

# Recent instants: buckets far in the past are already beyond their TTL and may be gone.
MINUTE0 = float((int(time.time()) // 3600 - 2) * 3600)  # the start of an hour (and a minute bucket)
T0 = MINUTE0 + 0.5


def change(store: ControlStore, phase: int, actor: str = "alice") -> PhaseState:
    cur = store.get_phase()
    new = PhaseState(phase=phase, epoch=cur.epoch + 1, updated_at=MINUTE0 + cur.epoch, updated_by=actor,
                     reason=f"to {phase}")
    store.compare_and_set(new, HistoryEntry(
        epoch=new.epoch, at=new.updated_at, actor=actor, from_phase=cur.phase, to_phase=phase,
        reason=new.reason, forced_gates=("dual_write_success",) if phase == 3 else (),
    ))
    return new


def test_a_never_set_store_reads_phase_1_epoch_0(store: ControlStore) -> None:
    assert store.get_phase() == PhaseState(phase=1, epoch=0)


def test_compare_and_set_stores_the_document_with_its_flags(store: ControlStore) -> None:
    new = change(store, 2)
    got = store.get_phase()
    assert got == new
    assert (got.dual_write_enabled, got.dual_read_enabled, got.read_from_dynamodb) == (True, False, False)


def test_a_stale_epoch_loses_and_writes_nothing(store: ControlStore) -> None:
    change(store, 2)
    stale = PhaseState(phase=4, epoch=1, updated_by="bob", reason="stale")
    with pytest.raises(EpochConflict, match=r"epoch 0.*at epoch 1"):
        store.compare_and_set(stale, HistoryEntry(epoch=1, at=0, actor="bob", from_phase=1, to_phase=4,
                                                  reason="stale"))
    assert store.get_phase().phase == 2
    assert [h.actor for h in store.history()] == ["alice"]


def test_history_is_kept_in_change_order(store: ControlStore) -> None:
    for phase in (2, 3, 2, 1, 2):
        change(store, phase)
    hist = store.history()
    assert [(h.epoch, h.from_phase, h.to_phase) for h in hist] == [
        (1, 1, 2), (2, 2, 3), (3, 3, 2), (4, 2, 1), (5, 1, 2),
    ]
    assert hist[1].forced_gates == ("dual_write_success",)


def test_window_sum_counts_the_minutes_the_window_touches(store: ControlStore) -> None:
    store.incr(names.DUAL_WRITE_APPLIED, 5, at=MINUTE0 - 1)      # the minute before: outside
    store.incr(names.DUAL_WRITE_APPLIED, 7, at=MINUTE0)           # first minute
    store.incr(names.DUAL_WRITE_APPLIED, 1, at=MINUTE0 + 59.9)    # still the first minute
    store.incr(names.DUAL_WRITE_APPLIED, 100, at=MINUTE0 + 3600)  # the next hour, last minute included
    store.incr(names.DUAL_WRITE_APPLIED, 1000, at=MINUTE0 + 3660)  # after the window
    assert store.window_sum(names.DUAL_WRITE_APPLIED, MINUTE0, MINUTE0 + 3600) == 108


def test_incr_many_adds_to_each_counter_separately(store: ControlStore) -> None:
    store.incr_many({names.VALIDATION_PASSED: 3, names.VALIDATION_FAILED: 1}, at=MINUTE0)
    store.incr_many({names.VALIDATION_PASSED: 2}, at=MINUTE0 + 30)
    assert store.window_sum(names.VALIDATION_PASSED, MINUTE0, MINUTE0 + 60) == 5
    assert store.window_sum(names.VALIDATION_FAILED, MINUTE0, MINUTE0 + 60) == 1


def test_an_unknown_counter_sums_to_zero(store: ControlStore) -> None:
    assert store.window_sum("nothing.here", MINUTE0, MINUTE0 + 86400) == 0


def test_markers_round_trip_list_by_prefix_and_delete(store: ControlStore) -> None:
    doc = {"cursor": [1, "a"], "done": 10, "total_estimate": 20, "complete": False, "started_at": T0}
    store.put_marker(names.backfill_marker("shop.users"), doc)
    store.put_marker(names.WRITER_HEARTBEAT, {"ts": T0, "group": "g"})
    assert store.get_marker("backfill.shop.users") == doc
    assert list(store.list_markers(names.BACKFILL_PREFIX)) == ["backfill.shop.users"]
    store.delete_marker("backfill.shop.users")
    assert store.get_marker("backfill.shop.users") is None
    assert list(store.list_markers("")) == [names.WRITER_HEARTBEAT]


def test_wait_for_change_returns_the_new_state(store: ControlStore, control_settings: Settings) -> None:
    assert store.wait_for_change(0, timeout=0.05) is None
    with open_control_store(control_settings) as other:
        change(other, 2)
    got = store.wait_for_change(0, timeout=5)
    assert got is not None and got.phase == 2


def backend(settings: Settings, name: str) -> Settings:
    return settings.model_copy(update={"control": settings.control.model_copy(update={"backend": name})})


def test_redis_counters_expire(settings: Settings, redis_client: Any) -> None:
    control_settings = backend(settings, "redis")
    with open_control_store(control_settings) as store:
        store.incr(names.DUAL_WRITE_APPLIED, 1)
        keys = list(redis_client.scan_iter(match=f"{control_settings.namespace}:counter:*"))
    assert keys and all(redis_client.ttl(k) > 0 for k in keys)


def test_dynamodb_control_table_is_created_with_the_prefix_and_ttl(settings: Settings, dynamodb: Any) -> None:
    control_settings = backend(settings, "dynamodb")
    name = control_table_name(control_settings)
    assert name == control_settings.dynamodb.table_prefix + "migration-control"
    with open_control_store(control_settings) as store:
        store.incr(names.DUAL_WRITE_APPLIED, 1, at=MINUTE0)
    items = dynamodb.scan(TableName=name)["Items"]
    assert [i["expires_at"]["N"] for i in items if i["pk"]["S"].startswith("counter#")] != []
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    assert ttl.get("AttributeName") == "expires_at"


def test_an_unreachable_redis_raises_control_store_unavailable(settings: Settings) -> None:
    bad = settings.model_copy(update={"control": settings.control.model_copy(
        update={"redis_url": "redis://127.0.0.1:1/0"})})
    with pytest.raises(ControlStoreUnavailable, match="unreachable"):
        open_control_store(bad).start()


def test_an_unreachable_dynamodb_raises_control_store_unavailable(settings: Settings) -> None:
    bad = settings.model_copy(update={
        "control": settings.control.model_copy(update={"backend": "dynamodb"}),
        "dynamodb": settings.dynamodb.model_copy(update={"endpoint_url": "http://127.0.0.1:1"}),
    })
    with pytest.raises(ControlStoreUnavailable, match="control table"):
        open_control_store(bad).start()

"""The reverse loop on in-memory fakes: order, lineage, checkpoints, retries, dead letters, lag."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.reverse.model import Outcome
from consumers.reverse.runner import ReverseOptions, ReverseReplicator
from replicator.control import HistoryEntry, PhaseState, names
from replicator.control.memory import MemoryControlStore
from replicator.errors import ControlStoreUnavailable, FatalDataError, SourceUnavailable, StatementRejected
from replicator.events import Row
from replicator.mapping import ORIGIN_CDC
from tests.consumers.reverse.fakes import (
    FakeSink,
    FakeStreams,
    StepClock,
    app_version,
    item,
    record,
    target,
    tomb,
    users_plan,
)

PLAN = users_plan()
CHECKPOINT = names.reverse_checkpoint_marker("users")


def put(seq: int, key: int, n: int, origin: str = "app", generation: int = 1) -> dict[str, Any]:
    row: Row = {"id": key, "email": f"e{key}", "n": n}
    return record(seq, PLAN.mapper.key(row), item(PLAN, row, app_version(1e9 + seq, generation), origin))


def delete(seq: int, key: int) -> dict[str, Any]:
    row: Row = {"id": key, "email": f"e{key}", "n": 0}
    return record(seq, PLAN.mapper.key(row), tomb(PLAN, row, app_version(1e9 + seq)), old=item(PLAN, row, 1))


def replicator(streams: FakeStreams, sink: FakeSink, store: MemoryControlStore | None = None,
               clock: StepClock | None = None, **options: Any) -> ReverseReplicator:
    clock = clock or StepClock()
    opts = {"poll_interval_s": 0.0, "shard_refresh_s": 0.0, **options}
    rev = ReverseReplicator([target(PLAN)], streams, sink, store or MemoryControlStore(),
                            options=ReverseOptions(**opts), clock=clock, monotonic=clock)
    rev.start()
    return rev


def until_caught_up(rev: ReverseReplicator, rounds: int = 50) -> None:
    """Step until a round read every shard to its end after now (a prefetched page may be older)."""
    if isinstance(rev.clock, StepClock):
        rev.clock.now += 1
    after = rev.clock() - rev.options.settle_s
    for _ in range(rounds):
        rev.step()
        if rev.progress.caught_up and rev.progress.caught_up_at >= after:
            return
    raise AssertionError("not caught up")


def applied_n(sink: FakeSink, key: int) -> list[int]:
    return [c.params[2] for c in sink.log if c.pk == (key,) and c.op == "upsert"]


def test_one_rows_changes_are_applied_in_stream_order_and_a_child_shard_after_its_parent() -> None:
    streams, sink = FakeStreams(), FakeSink()
    streams.add("users", "parent", put(1, 1, 1), put(2, 2, 1), put(3, 1, 2), put(4, 1, 3), closed=True)
    streams.add("users", "child", put(5, 1, 4), delete(6, 2), put(7, 1, 5), parent="parent")
    rev = replicator(streams, sink, page_size=2)
    until_caught_up(rev)
    assert applied_n(sink, 1) == [1, 3, 4, 5]  # pages of 2: n=2 superseded by n=3 within its page
    assert sink.rows == {("shop.users", (1,)): (1, "e1", 5)}
    last_parent = max(i for i, (s, _) in enumerate(streams.reads) if s == "parent")
    assert min(i for i, (s, _) in enumerate(streams.reads) if s == "child") > last_parent
    cp = rev.store.get_marker(CHECKPOINT)
    assert cp is not None and cp["finished"] == ["parent"] and cp["shards"]["child"] == f"{7:021d}"


def test_the_checkpoint_moves_only_after_mysql_committed_the_page() -> None:
    streams, sink = FakeStreams(), FakeSink()
    streams.add("users", "s", put(1, 1, 1))
    sink.down = 1
    clock = StepClock()
    rev = replicator(streams, sink, clock=clock)
    rev.step()
    assert (rev.store.get_marker(CHECKPOINT) or {}).get("shards", {}).get("s") is None
    assert not rev.progress.caught_up
    clock.now += 5
    until_caught_up(rev)
    assert rev.store.get_marker(CHECKPOINT)["shards"]["s"] == f"{1:021d}"  # type: ignore[index]
    assert sink.rows == {("shop.users", (1,)): (1, "e1", 1)}


def test_a_restart_resumes_after_the_checkpoint_and_does_not_apply_older_records_again() -> None:
    streams, store = FakeStreams(), MemoryControlStore()
    streams.add("users", "s", put(1, 1, 1), put(2, 2, 1))
    until_caught_up(replicator(streams, FakeSink(), store))
    streams.add("users", "s", put(3, 3, 1))
    again = FakeSink()
    until_caught_up(replicator(streams, again, store))
    assert [c.pk for c in again.log] == [(3,)]


class CheckpointsDown(MemoryControlStore):
    """A control store that refuses checkpoint writes (a crash between commit and checkpoint)."""

    def put_marker(self, name: str, doc: dict[str, Any]) -> None:
        if name.startswith(names.REVERSE_CHECKPOINT_PREFIX):
            raise ControlStoreUnavailable("down (fake)")
        super().put_marker(name, doc)


def test_a_crash_between_the_mysql_commit_and_the_checkpoint_reapplies_the_page_harmlessly() -> None:
    streams, sink, store = FakeStreams(), FakeSink(), CheckpointsDown()
    streams.add("users", "s", put(1, 1, 1), delete(2, 1), put(3, 2, 7))
    rev = replicator(streams, sink, store)
    for _ in range(3):
        rev.step()
    assert not rev.progress.caught_up  # an unsaved checkpoint is never caught up
    before = dict(sink.rows)
    healthy = MemoryControlStore()
    until_caught_up(replicator(streams, sink, healthy))  # "restarted": reads from the (absent) checkpoint
    assert sink.rows == before == {("shop.users", (2,)): (2, "e2", 7)}


def test_a_key_refused_as_duplicate_holds_its_shard_then_is_a_dead_letter_named_in_the_heartbeat() -> None:
    streams, sink, clock = FakeStreams(), FakeSink(), StepClock()
    streams.add("users", "s", put(1, 1, 1), put(2, 2, 1))
    sink.refuse[(2,)] = Outcome("retry", "duplicate_key", "Duplicate entry 'e2' for key 'email'")
    rev = replicator(streams, sink, clock=clock, page_size=2, retry_s=10.0)
    rev.step()
    streams.add("users", "s", put(3, 3, 1))
    for _ in range(5):
        clock.now += 1
        rev.step()
    assert [c.pk for c in sink.log] == [(1,)]  # key 3 waits behind the refused key 2
    clock.now += 10
    until_caught_up(rev)
    assert [c.pk for c in sink.log] == [(1,), (3,)]
    beat = rev.store.get_marker(names.REVERSE_HEARTBEAT)
    assert beat is not None and beat["deadletters"] == 1 and beat["deadletter_keys"] == ["shop.users id=2"]
    letter = rev.store.get_marker(names.reverse_deadletter_marker("shop.users", "id=2"))
    assert letter is not None and letter["reason"] == "duplicate_key" and letter["sequence"] == f"{2:021d}"
    # a later change of the row that MySQL takes supersedes the dead letter
    del sink.refuse[(2,)]
    streams.add("users", "s", put(4, 2, 2))
    until_caught_up(rev)
    assert rev.store.list_markers(names.REVERSE_DEADLETTER_PREFIX) == {}
    assert rev.store.get_marker(names.REVERSE_HEARTBEAT)["deadletters"] == 0  # type: ignore[index]


def test_a_change_mysql_refuses_for_good_is_a_dead_letter_at_once_and_the_shard_goes_on() -> None:
    streams, sink = FakeStreams(), FakeSink()
    streams.add("users", "s", put(1, 1, 1), put(2, 2, 1))
    sink.refuse[(1,)] = Outcome("rejected", "too_long", "Data too long for column 'email'")
    rev = replicator(streams, sink)
    until_caught_up(rev)
    assert [c.pk for c in sink.log] == [(2,)]
    assert rev.dead_letters.keys() == ["shop.users id=1"]


def test_cdc_and_snapshot_records_are_skipped_and_counted() -> None:
    streams, sink = FakeStreams(), FakeSink()
    streams.add("users", "s", put(1, 1, 1, origin=ORIGIN_CDC), put(2, 1, 2, origin="snapshot"), put(3, 2, 1))
    rev = replicator(streams, sink)
    until_caught_up(rev)
    assert [c.pk for c in sink.log] == [(2,)]
    assert rev.metrics.skipped.labels("origin_cdc")._value.get() == 1
    assert rev.metrics.skipped.labels("origin_snapshot")._value.get() == 1


def test_caught_up_at_moves_only_when_every_shard_is_read_to_its_end_minus_the_settle_time() -> None:
    streams, sink, clock = FakeStreams(), FakeSink(), StepClock()
    streams.add("users", "a", put(1, 1, 1))
    streams.add("users", "b", put(2, 2, 1), put(3, 3, 1))
    rev = replicator(streams, sink, clock=clock, page_size=1, settle_s=0.5)
    rev.step()
    assert not rev.progress.caught_up and rev.progress.caught_up_at == 0.0
    clock.now += 1
    for _ in range(3):  # b's second page, then a and b at their ends
        rev.step()
    beat = rev.store.get_marker(names.REVERSE_HEARTBEAT)
    assert beat is not None and beat["caught_up"] and beat["lag_s"] == 0
    assert beat["caught_up_at"] == clock.now - 0.5
    clock.now += 3
    rev.step()
    assert rev.store.get_marker(names.REVERSE_HEARTBEAT)["caught_up_at"] == clock.now - 0.5  # type: ignore[index]


def test_records_trimmed_past_the_checkpoint_stop_with_a_fatal_error_saying_what_to_do() -> None:
    streams, store = FakeStreams(), MemoryControlStore()
    shard = streams.add("users", "s", put(1, 1, 1))
    until_caught_up(replicator(streams, FakeSink(), store))
    streams.add("users", "s", put(2, 1, 2), put(3, 1, 3))
    shard.trimmed_before = 2  # records 1 and 2 are gone: 2 was never applied
    rev = replicator(streams, FakeSink(), store)
    with pytest.raises(FatalDataError, match=r"trimmed .*lost to MySQL.*replicator reconcile"):
        rev.step()


def test_an_expired_iterator_is_opened_again_from_the_checkpoint() -> None:
    streams, sink = FakeStreams(), FakeSink()
    streams.add("users", "s", put(1, 1, 1))
    rev = replicator(streams, sink)
    until_caught_up(rev)
    streams.add("users", "s", put(2, 1, 2))
    streams.expire_next = True
    until_caught_up(rev)
    assert applied_n(sink, 1) == [1, 2]
    assert rev.metrics.retries.labels("iterator_expired")._value.get() == 1


def test_a_phase5_write_read_after_writes_went_back_to_mysql_is_a_dead_letter_not_applied() -> None:
    streams, sink, store = FakeStreams(), FakeSink(), MemoryControlStore()
    store.compare_and_set(PhaseState(phase=4, epoch=1, generation=2),
                          HistoryEntry(epoch=1, at=0, actor="t", from_phase=5, to_phase=4, reason="t"))
    streams.add("users", "s", put(1, 1, 1, generation=1), put(2, 2, 1, generation=3))
    rev = replicator(streams, sink, store)
    until_caught_up(rev)
    assert [c.pk for c in sink.log] == [(2,)]
    letter = store.get_marker(names.reverse_deadletter_marker("shop.users", "id=1"))
    assert letter is not None and letter["reason"] == "stale_after_switch"


def test_a_page_read_ahead_never_makes_caught_up_at_later_than_the_read_that_found_the_end() -> None:
    streams, sink, clock = FakeStreams(), FakeSink(), StepClock()
    streams.add("users", "s", put(1, 1, 1))
    rev = replicator(streams, sink, clock=clock, settle_s=0.5)
    read_at = clock.now
    rev.step()  # applies record 1 and reads the next (empty) page ahead
    clock.now += 5
    streams.add("users", "s", put(2, 2, 1))  # written after the read ahead
    rev.step()
    assert rev.progress.caught_up and rev.progress.caught_up_at == read_at - 0.5
    assert [c.pk for c in sink.log] == [(1,)]
    until_caught_up(rev)
    assert [c.pk for c in sink.log] == [(1,), (2,)]


def test_old_row_versions_are_pruned_a_minute_after_start_then_every_prune_interval() -> None:
    clock, sink = StepClock(), FakeSink()
    rev = replicator(FakeStreams({"s1": (None, [])}), sink, clock=clock, prune_every_s=600.0,
                     versions_retention_s=90_000.0)
    rev.prune_versions()
    assert sink.prunes == []  # not at start-up
    clock.now += 61
    rev.prune_versions()
    rev.prune_versions()
    assert sink.prunes == [90_000.0]
    assert rev.metrics.versions_pruned._value.get() == 3
    clock.now += 600
    rev.prune_versions()
    assert sink.prunes == [90_000.0, 90_000.0]


def test_a_user_without_delete_on_the_versions_table_turns_pruning_off_and_mysql_down_waits() -> None:
    clock, sink = StepClock(), FakeSink()
    rev = replicator(FakeStreams({"s1": (None, [])}), sink, clock=clock, prune_every_s=600.0)
    sink.prune_error = SourceUnavailable("MySQL is down (fake)")
    clock.now += 61
    rev.prune_versions()  # logged, tried again at the next interval
    sink.prune_error = StatementRejected("DELETE command denied", code=1142)
    clock.now += 600
    rev.prune_versions()  # logged once, off for good
    sink.prune_error = None
    clock.now += 600
    rev.prune_versions()
    assert len(sink.prunes) == 2

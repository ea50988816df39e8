"""The shared fakes of replicator.testing: the logic they carry, and (under mypy) their Protocols."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.writer.applier import WriteResult
from consumers.writer.batch import DeadLetter, RawMessage
from consumers.writer.ports import Applier, DeadLetterSink, EventConsumer
from replicator.control import ControlStore
from replicator.errors import BrokerUnavailable, ProbeError, SourceUnavailable
from replicator.mapping import VERSION_ATTR, ConditionalWrite, TableMapper, is_tombstone, tombstone, upsert
from replicator.phase.clock import Clock
from replicator.phase.probes import OffsetProbe, TableProbe
from replicator.reader.checkpoint import Checkpoint
from replicator.reader.gtid import StartAt
from replicator.reader.items import Heartbeat, Item, TxBegin, TxEnd
from replicator.reader.ports import (
    ChangeSource,
    CheckpointStore,
    EventSink,
    SinkFactory,
    SourceFactory,
    SourceServer,
)
from replicator.reader.service import preflight
from replicator.settings import TableMapping, load_settings
from replicator.testing import (
    ManualClock,
    MemoryApplier,
    MemoryBinlog,
    MemoryBroker,
    MemoryChangeSource,
    MemoryControlStore,
    MemoryDeadLetters,
    MemoryDynamoDB,
    MemoryEventConsumer,
    MemoryOffsetProbe,
    MemorySourceServer,
    MemoryTableProbe,
)

TABLE = "p-users"
MAPPER = TableMapper(TableMapping(source="shop.users"), (("id", "int(11)"), ("n", "int(11)")), ("id",))
KEY = {"id": {"N": "1"}}


def put(version: int, n: int = 0, key: int = 1) -> ConditionalWrite:
    return upsert(MAPPER, TABLE, {"id": key, "n": n}, version, "cdc")


def delete(version: int, key: int = 1) -> ConditionalWrite:
    return tombstone(MAPPER, TABLE, {"id": key, "n": None}, version, "cdc", expires_at=2_000_000_000)


def test_every_fake_satisfies_its_protocol() -> None:
    """Checked by ``mypy tests/replicator/test_testing.py`` (make lint type-checks the packages only)."""
    broker = MemoryBroker()
    binlog = MemoryBinlog()
    source: ChangeSource = MemoryChangeSource([])
    sink: EventSink = broker.sink()
    checkpoints: CheckpointStore = broker
    sources: SourceFactory = binlog.open
    sinks: SinkFactory = broker.sink
    server: SourceServer = MemorySourceServer()
    consumer: EventConsumer = MemoryEventConsumer[RawMessage]()
    letters: DeadLetterSink = MemoryDeadLetters[DeadLetter]()
    applier: Applier = MemoryApplier(WriteResult)
    tables: TableProbe = MemoryTableProbe(())
    offsets: OffsetProbe = MemoryOffsetProbe()
    clock: Clock = ManualClock()
    store: ControlStore = MemoryControlStore()
    assert all(x is not None for x in (source, sink, checkpoints, sources, sinks, server, consumer,
                                       letters, applier, tables, offsets, clock, store))


# --------------------------------------------------------------------------- the DynamoDB fake

def test_a_lower_version_never_overwrites_a_stored_item() -> None:
    db = MemoryDynamoDB()
    assert db.put(put(5, n=5))
    assert not db.put(put(4, n=4))
    assert (db.get(TABLE, KEY) or {})["n"] == {"N": "5"}


def test_the_same_version_again_is_a_replay_not_a_write() -> None:
    db = MemoryDynamoDB()
    assert db.put(put(5, n=5))
    assert not db.put(put(5, n=6))
    assert (db.get(TABLE, KEY) or {})["n"] == {"N": "5"}


def test_a_tombstone_hides_the_item_and_keeps_an_older_insert_from_resurrecting_it() -> None:
    db = MemoryDynamoDB()
    db.put(put(5))
    assert db.put(delete(6))
    assert db.get(TABLE, KEY) is None and db.scan(TABLE) == []
    assert is_tombstone(db.stored(TABLE, KEY) or {})
    assert not db.put(put(5))
    assert db.get(TABLE, KEY) is None


def test_a_newer_write_replaces_a_tombstone() -> None:
    db = MemoryDynamoDB()
    db.put(delete(6))
    assert db.put(put(7, n=7))
    assert db.scan(TABLE) == [db.get(TABLE, KEY)]


@given(st.lists(st.tuples(st.integers(1, 20), st.booleans()), min_size=1))
def test_any_order_of_writes_leaves_the_highest_version(writes: list[tuple[int, bool]]) -> None:
    db = MemoryDynamoDB()
    for version, deleted in writes:
        db.put(delete(version) if deleted else put(version, n=version))
    top = max(v for v, _ in writes)
    stored = db.stored(TABLE, KEY) or {}
    assert stored[VERSION_ATTR] == {"N": str(top)}
    assert is_tombstone(stored) == next(d for v, d in writes if v == top)


def test_the_applier_reports_applied_replayed_and_rejected_writes() -> None:
    journal: list[str] = []
    applier = MemoryApplier(WriteResult, reject=lambda w: "ValidationException: no" if w.version == 9 else "",
                            journal=journal)
    applier.start()
    applier.apply([put(5)])
    results = applier.apply([put(6, key=2), put(4), put(9, key=3)])
    assert [r.outcome for r in results] == ["applied", "replayed", "rejected"]
    assert results[2].error == "ValidationException: no" and applier.db.get(TABLE, {"id": {"N": "3"}}) is None
    assert journal == ["dynamodb", "dynamodb"]


def test_the_applier_refuses_writes_before_start() -> None:
    applier = MemoryApplier(WriteResult)
    assert applier.apply([]) == []
    with pytest.raises(RuntimeError):
        applier.apply([put(1)])


# --------------------------------------------------------------------------- the writer's Kafka fakes

def messages(n: int, partition: int = 0) -> list[RawMessage]:
    return [RawMessage("t", partition, i, b"k", b"v") for i in range(n)]


def test_the_consumer_delivers_nothing_while_paused_and_at_most_max_messages() -> None:
    consumer = MemoryEventConsumer(messages(5))
    consumer.pause_all()
    assert consumer.poll_batch(10, 0) == []
    consumer.resume_all()
    assert [m.offset for m in consumer.poll_batch(3, 0)] == [0, 1, 2]


def test_the_consumer_redelivers_what_was_not_committed() -> None:
    journal: list[str] = []
    consumer = MemoryEventConsumer([*messages(3), *messages(2, partition=1)], journal=journal)
    consumer.poll_batch(10, 0)
    consumer.commit({("t", 0): 2, ("t", 1): 0})
    consumer.redeliver_uncommitted()
    assert [(m.partition, m.offset) for m in consumer.poll_batch(10, 0)] == [(0, 2), (1, 0), (1, 1)]
    assert journal == ["commit"]


def test_a_failed_dead_letter_send_keeps_nothing() -> None:
    letters = MemoryDeadLetters[str](fail_sends=1)
    with pytest.raises(BrokerUnavailable):
        letters.send(["a"])
    letters.send(["b"])
    assert letters.letters == ["b"]


# --------------------------------------------------------------------------- the reader's fakes

def tx(i: int, file: str = "bin.000001") -> list[Item]:
    """Transaction i spans [100 i + 4, 100 i + 104)."""
    return [TxBegin(f"0-1-{i}", file, 100 * i + 4, 0), TxEnd(file, 100 * i + 104, 0)]


def take(source: MemoryChangeSource, n: int) -> list[Item]:
    out = []
    for item in source.items():
        out.append(item)
        if len(out) == n:
            source.close()
    return out


def test_the_binlog_resumes_after_the_transactions_that_end_at_or_before_the_start() -> None:
    binlog = MemoryBinlog([tx(0), tx(1), tx(2)])
    items = take(binlog.open(StartAt(file="bin.000001", offset=204)), 2)
    assert items == tx(2)
    assert binlog.end == ("bin.000001", 304)


def test_the_binlog_compares_files_before_offsets() -> None:
    binlog = MemoryBinlog([tx(5, "bin.000001"), tx(0, "bin.000002")])
    assert take(binlog.open(StartAt(file="bin.000002", offset=4)), 2) == tx(0, "bin.000002")


def test_an_opened_source_can_lose_its_connection_once() -> None:
    binlog = MemoryBinlog([tx(0), tx(1)])
    binlog.fail_next_open_after(3)
    failing = binlog.open(StartAt(file="bin.000001", offset=4)).items()
    assert [next(failing) for _ in range(3)] == [*tx(0), tx(1)[0]]
    with pytest.raises(SourceUnavailable):
        next(failing)
    assert take(binlog.open(StartAt(file="bin.000001", offset=4)), 4) == [*tx(0), *tx(1)]


def test_a_caught_up_source_sends_heartbeats_until_closed_from_another_thread() -> None:
    source = MemoryChangeSource(tx(0), idle_s=0.001)
    threading.Timer(0.05, source.close).start()
    items = list(source.items())
    assert items[:2] == tx(0) and items[2:] and all(i == Heartbeat("bin.000001") for i in items[2:])


def test_a_binlog_transaction_must_end_with_its_commit() -> None:
    with pytest.raises(ValueError):
        MemoryBinlog([tx(0)[:1]])


def test_only_committed_transactions_are_visible_with_their_checkpoint() -> None:
    broker = MemoryBroker()
    sink = broker.sink()
    sink.begin()
    sink.send("t", b"a", b"1")
    sink.abort()
    sink.begin()
    sink.send("t", b"b", b"2")
    assert broker.records == [] and sink.last_checkpoint() is None
    sink.commit(Checkpoint("bin.000001", 104))
    assert [r.key for r in broker.records] == [b"b"]
    assert broker.last_checkpoint() == Checkpoint("bin.000001", 104)


def test_a_failed_commit_drops_its_transaction() -> None:
    broker = MemoryBroker(fail_commits=1)
    sink = broker.sink()
    sink.begin()
    sink.send("t", b"a", b"1")
    with pytest.raises(BrokerUnavailable):
        sink.commit(Checkpoint("bin.000001", 104))
    assert broker.records == [] and broker.checkpoints == []
    with pytest.raises(RuntimeError):
        sink.send("t", b"a", b"1")


def test_the_default_source_server_passes_the_start_up_checks() -> None:
    settings = load_settings(tables=[{"source": "shop.users"}])
    preflight(settings, MemorySourceServer(tables=["shop.users", "shop.other"]))


def test_the_source_server_reports_mapped_tables_and_their_foreign_keys_only() -> None:
    fk = ("shop", "orders", "fk_user", "shop", "users", "ON DELETE CASCADE")
    server = MemorySourceServer(tables=["shop.users"], without_primary_key=["shop.orders", "shop.log"],
                                foreign_keys=[fk])
    assert server.tables({"shop.orders", "shop.users"}) == ({"shop.orders", "shop.users"}, {"shop.users"})
    assert server.foreign_keys({"shop.users"}) == []
    assert server.foreign_keys({"shop.orders"}) == [fk]


# --------------------------------------------------------------------------- probes and time

def test_the_offset_probe_records_questions_and_can_fail() -> None:
    probe = MemoryOffsetProbe({"a": 3})
    assert probe.topic_lags("g", ["a", "b"]) == {"a": 3, "b": 0}
    probe.error = "down"
    with pytest.raises(ProbeError, match="down"):
        probe.topic_lags("g", ["a"])
    assert probe.asked == [("g", ["a", "b"]), ("g", ["a"])]


def test_the_manual_clock_moves_only_when_told_and_sleeping_moves_it() -> None:
    clock = ManualClock(100.0)
    clock.advance(5)
    clock.sleep(2.5)
    assert clock.now() == clock() == 107.5 and clock.slept == [2.5]

"""The reader loop with an in-memory binlog and an in-memory transactional sink (pure logic)."""

from __future__ import annotations

import time
from collections.abc import Iterator

from replicator.events import Row
from replicator.reader.items import Item, RowsChange, TxBegin, TxEnd
from replicator.reader.runner import Reader, ReaderOptions
from replicator.reader.schema import ColumnSpec, T, build_schema
from replicator.reader.start import StartPositions
from replicator.settings import load_settings
from replicator.testing import MemoryBinlog, MemoryBroker, MemoryChangeSource, MemorySourceServer

FILE = "bin.000001"
SCHEMA = build_schema("d", "t", (ColumnSpec("id", T.LONG),), ("id",))
OPTS = ReaderOptions(
    max_batch_rows=2,
    max_batch_s=0.02,
    idle_checkpoint_s=0.05,
    heartbeat_s=0.05,
    backoff_initial_s=0.01,
    backoff_max_s=0.02,
)
SERVER = MemorySourceServer(head=(FILE, 4), binlog_files=[FILE])  # the reader starts at the binlog's start


def binlog(txs: list[list[int]]) -> MemoryBinlog:
    """Transactions of inserted ids; transaction i spans [100 i + 4, 100 i + 104)."""
    out = []
    for i, ids in enumerate(txs):
        start = 100 * i + 4
        rows: list[tuple[Row, ...]] = [({"id": k},) for k in ids]
        items: list[Item] = [
            TxBegin(f"0-1-{i + 1}", FILE, start, 0),
            RowsChange(SCHEMA, "insert", rows, FILE, start + 10, 0),
            TxEnd(FILE, start + 100, 1000 + i),
        ]
        out.append(items)
    return MemoryBinlog(out)


def run_reader(
    log: MemoryBinlog,
    kafka: MemoryBroker,
    fail_source_after: int | None = None,
    settle_s: float = 0.0,
) -> Reader:
    settings = load_settings(tables=[{"source": "d.t"}])
    if fail_source_after is not None:
        log.fail_next_open_after(fail_source_after)
    reader = Reader(
        settings,
        source_factory=log.open,
        sink_factory=kafka.sink,
        positions=StartPositions(SERVER.head, SERVER.binlog_files, None),
        options=OPTS,
    )
    reader.start()
    deadline = time.monotonic() + 10
    _, last_end = log.end
    while time.monotonic() < deadline and not (reader.committed and reader.committed.offset >= last_end):
        time.sleep(0.01)
    time.sleep(settle_s)
    reader.stop()
    return reader


def ids(kafka: MemoryBroker) -> list[bytes]:
    return [r.key for r in kafka.records]


def values(kafka: MemoryBroker) -> list[bytes]:
    return [r.value for r in kafka.records]


def test_a_mysql_transaction_is_never_split_across_kafka_transactions() -> None:
    kafka = MemoryBroker()
    run_reader(binlog([[1, 2, 3, 4, 5]]), kafka)
    assert len(ids(kafka)) == 5
    assert [cp.offset for cp in kafka.checkpoints] == [4, 104], "anchor, then one checkpoint after the tx"


def test_checkpoints_sit_after_whole_transactions_with_their_gtid() -> None:
    kafka = MemoryBroker()
    run_reader(binlog([[1], [2], [3]]), kafka)
    assert all((cp.offset - 4) % 100 == 0 for cp in kafka.checkpoints)
    assert kafka.checkpoints[-1].gtid_position == "0-1-3"


def test_a_failed_kafka_commit_is_retried_from_the_committed_checkpoint_without_duplicates() -> None:
    kafka = MemoryBroker(fail_commits=2)  # the anchor commit and the first batch fail once each
    run_reader(binlog([[1], [2], [3], [4], [5], [6]]), kafka)
    assert ids(kafka) == [b'{"id":%d}' % i for i in range(1, 7)]
    assert len(kafka.sinks) >= 2, "the producer was rebuilt"


def test_a_source_failure_resumes_at_the_last_committed_transaction_without_loss_or_duplicate() -> None:
    kafka = MemoryBroker()
    reader = run_reader(binlog([[1], [2], [3], [4]]), kafka, fail_source_after=7)
    assert ids(kafka) == [b'{"id":%d}' % i for i in range(1, 5)]
    assert (
        sum(s.value for m in reader.metrics.retries.collect() for s in m.samples if s.name.endswith("_total"))
        >= 1
    )


def test_events_carry_the_commit_time_of_their_transaction() -> None:
    from replicator.events import ChangeEvent

    kafka = MemoryBroker()
    run_reader(binlog([[1, 2], [3]]), kafka)
    assert [ChangeEvent.from_json(v).ts_ms for v in values(kafka)] == [1_000_000, 1_000_000, 1_001_000]


def busy_unmapped() -> Iterator[Item]:
    """A server busy with unmapped tables only: empty transactions back to back, never idle."""
    offset = 4
    while True:
        yield TxBegin(None, FILE, offset, 0)
        yield TxEnd(FILE, offset + 50, 0)
        offset += 50
        time.sleep(0.0005)


def test_checkpoint_advances_while_only_unmapped_tables_change() -> None:
    kafka = MemoryBroker()
    reader = Reader(
        load_settings(tables=[{"source": "d.t"}]),
        source_factory=lambda start: MemoryChangeSource(busy_unmapped()),
        sink_factory=kafka.sink,
        positions=StartPositions(SERVER.head, SERVER.binlog_files, None),
        options=OPTS,
    )
    reader.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(kafka.checkpoints) < 3:
        time.sleep(0.01)
    reader.stop()
    assert len(kafka.checkpoints) >= 3 and kafka.checkpoints[-1].offset > 4
    assert kafka.records == []


def test_heartbeats_on_an_idle_server_bring_the_lag_to_zero() -> None:
    kafka = MemoryBroker()
    reader = run_reader(binlog([[1]]), kafka, settle_s=0.2)  # from 1970: a huge lag when committed
    lag = [s.value for m in reader.metrics.lag.collect() for s in m.samples]
    assert lag == [0.0]


def test_the_drain_loop_beats_healthz_and_streaming_is_ready() -> None:
    kafka = MemoryBroker()
    reader = run_reader(binlog([[1], [2]]), kafka)
    health = reader.metrics.health
    assert health.live() == (True, "ok") and health.ready() == (True, "ok")
    health.max_silence_s = 0.0  # as if the loop had been stuck for longer than the limit
    time.sleep(0.01)
    assert not health.live()[0] and "silent" in health.ready()[1]

"""The reader loop with an in-memory binlog and an in-memory transactional sink (pure logic)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from replicator.errors import BrokerUnavailable, SourceUnavailable
from replicator.events import Row
from replicator.reader.checkpoint import Checkpoint
from replicator.reader.gtid import StartAt
from replicator.reader.items import Heartbeat, Item, RowsChange, TxBegin, TxEnd
from replicator.reader.runner import Reader, ReaderOptions
from replicator.reader.schema import ColumnSpec, T, build_schema
from replicator.reader.start import StartPositions
from replicator.settings import load_settings

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


def binlog(txs: list[list[int]]) -> list[tuple[int, list[Item]]]:
    """Transactions of inserted ids -> (end offset, items); transaction i spans [100 i + 4, 100 i + 104)."""
    out = []
    for i, ids in enumerate(txs):
        start = 100 * i + 4
        rows: list[tuple[Row, ...]] = [({"id": k},) for k in ids]
        items: list[Item] = [
            TxBegin(f"0-1-{i + 1}", FILE, start, 0),
            RowsChange(SCHEMA, "insert", rows, FILE, start + 10, 0),
            TxEnd(FILE, start + 100, 1000 + i),
        ]
        out.append((start + 100, items))
    return out


class FakeSource:
    def __init__(self, log: list[tuple[int, list[Item]]], start: StartAt, fail_after: int | None) -> None:
        self._log, self._start, self._fail_after = log, start, fail_after
        self.closed = threading.Event()

    def items(self) -> Iterator[Item]:
        sent = 0
        for end, items in self._log:
            if end <= (self._start.offset or 0):
                continue
            for item in items:
                if self._fail_after is not None and sent == self._fail_after:
                    raise SourceUnavailable("connection lost")
                sent += 1
                yield item
        while not self.closed.is_set():
            time.sleep(0.01)
            yield Heartbeat(FILE)

    def close(self) -> None:
        self.closed.set()


class Kafka:
    """What read_committed consumers see: committed transactions only."""

    def __init__(self, fail_commits: int = 0) -> None:
        self.visible: list[tuple[str, bytes]] = []
        self.values: list[bytes] = []
        self.checkpoints: list[Checkpoint] = []
        self.fail_commits = fail_commits
        self.sinks = 0


class FakeSink:
    def __init__(self, kafka: Kafka) -> None:
        self._k = kafka
        self._open: list[tuple[str, bytes]] | None = None
        self._values: list[bytes] = []
        kafka.sinks += 1

    def begin(self) -> None:
        assert self._open is None
        self._open = []

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        assert self._open is not None
        self._open.append((topic, key))
        self._values.append(value)

    def commit(self, checkpoint: Checkpoint) -> None:
        assert self._open is not None
        records, self._open = self._open, None
        if self._k.fail_commits:
            self._k.fail_commits -= 1
            self._values = []
            raise BrokerUnavailable("broker gone")
        self._k.visible += records
        self._k.values += self._values
        self._values = []
        self._k.checkpoints.append(checkpoint)

    def abort(self) -> None:
        self._open = None
        self._values = []

    def last_checkpoint(self) -> Checkpoint | None:
        return self._k.checkpoints[-1] if self._k.checkpoints else None

    def close(self) -> None:
        self._open = None


def run_reader(
    log: list[tuple[int, list[Item]]],
    kafka: Kafka,
    fail_source_after: int | None = None,
    settle_s: float = 0.0,
) -> Reader:
    settings = load_settings(tables=[{"source": "d.t"}])
    failures = [fail_source_after]

    def source(start: StartAt) -> FakeSource:
        return FakeSource(log, start, failures.pop() if failures else None)

    reader = Reader(
        settings,
        source_factory=source,
        sink_factory=lambda: FakeSink(kafka),
        positions=StartPositions(lambda: (FILE, 4), lambda: [FILE], None),
        options=OPTS,
    )
    reader.start()
    deadline = time.monotonic() + 10
    last_end = log[-1][0]
    while time.monotonic() < deadline and not (reader.committed and reader.committed.offset >= last_end):
        time.sleep(0.01)
    time.sleep(settle_s)
    reader.stop()
    return reader


def ids(kafka: Kafka) -> list[bytes]:
    return [key for _, key in kafka.visible]


def test_a_mysql_transaction_is_never_split_across_kafka_transactions() -> None:
    kafka = Kafka()
    run_reader(binlog([[1, 2, 3, 4, 5]]), kafka)
    assert len(ids(kafka)) == 5
    assert [cp.offset for cp in kafka.checkpoints] == [4, 104], "anchor, then one checkpoint after the tx"


def test_checkpoints_sit_after_whole_transactions_with_their_gtid() -> None:
    kafka = Kafka()
    run_reader(binlog([[1], [2], [3]]), kafka)
    assert all((cp.offset - 4) % 100 == 0 for cp in kafka.checkpoints)
    assert kafka.checkpoints[-1].gtid_position == "0-1-3"


def test_a_failed_kafka_commit_is_retried_from_the_committed_checkpoint_without_duplicates() -> None:
    kafka = Kafka(fail_commits=2)  # the anchor commit and the first batch fail once each
    run_reader(binlog([[1], [2], [3], [4], [5], [6]]), kafka)
    assert ids(kafka) == [b'{"id":%d}' % i for i in range(1, 7)]
    assert kafka.sinks >= 2, "the producer was rebuilt"


def test_a_source_failure_resumes_at_the_last_committed_transaction_without_loss_or_duplicate() -> None:
    kafka = Kafka()
    reader = run_reader(binlog([[1], [2], [3], [4]]), kafka, fail_source_after=7)
    assert ids(kafka) == [b'{"id":%d}' % i for i in range(1, 5)]
    assert (
        sum(s.value for m in reader.metrics.retries.collect() for s in m.samples if s.name.endswith("_total"))
        >= 1
    )


def test_events_carry_the_commit_time_of_their_transaction() -> None:
    from replicator.events import ChangeEvent

    kafka = Kafka()
    run_reader(binlog([[1, 2], [3]]), kafka)
    assert [ChangeEvent.from_json(v).ts_ms for v in kafka.values] == [1_000_000, 1_000_000, 1_001_000]


class BusyUnmappedSource:
    """A server busy with unmapped tables only: empty transactions back to back, never idle."""

    def __init__(self) -> None:
        self.closed = threading.Event()

    def items(self) -> Iterator[Item]:
        offset = 4
        while not self.closed.is_set():
            yield TxBegin(None, FILE, offset, 0)
            yield TxEnd(FILE, offset + 50, 0)
            offset += 50
            time.sleep(0.0005)

    def close(self) -> None:
        self.closed.set()


def test_checkpoint_advances_while_only_unmapped_tables_change() -> None:
    kafka = Kafka()
    reader = Reader(
        load_settings(tables=[{"source": "d.t"}]),
        source_factory=lambda start: BusyUnmappedSource(),
        sink_factory=lambda: FakeSink(kafka),
        positions=StartPositions(lambda: (FILE, 4), lambda: [FILE], None),
        options=OPTS,
    )
    reader.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(kafka.checkpoints) < 3:
        time.sleep(0.01)
    reader.stop()
    assert len(kafka.checkpoints) >= 3 and kafka.checkpoints[-1].offset > 4
    assert kafka.visible == []


def test_heartbeats_on_an_idle_server_bring_the_lag_to_zero() -> None:
    kafka = Kafka()
    reader = run_reader(binlog([[1]]), kafka, settle_s=0.2)  # from 1970: a huge lag when committed
    lag = [s.value for m in reader.metrics.lag.collect() for s in m.samples]
    assert lag == [0.0]

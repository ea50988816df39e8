"""The version generation in the reader (docs/design.md), on an in-memory binlog and Kafka:
fence row changes set the generation of every later event, checkpoints carry it, restarts
resume with it, and nothing makes it go back."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable

import pytest

from replicator.control.watermark import ReaderMark, WatermarkSnapshot
from replicator.errors import UnmappableSchemaError
from replicator.events import ChangeEvent, Row, binlog_version, split_version
from replicator.reader.checkpoint import Checkpoint
from replicator.reader.gtid import GtidState, StartAt
from replicator.reader.items import Item, RowsChange, Statement, TxBegin, TxEnd
from replicator.reader.runner import Reader, ReaderOptions
from replicator.reader.schema import ColumnSpec, T, build_schema
from replicator.reader.start import StartPositions
from replicator.reader.transactions import CompleteTx, Pump, QueueItem
from replicator.settings import load_settings
from replicator.testing import MemoryBinlog, MemoryBroker

FILE = "bin.000001"
DATA = build_schema("d", "t", (ColumnSpec("id", T.LONG),), ("id",))
FENCE = build_schema("r", "fence", (
    ColumnSpec("id", T.TINY, unsigned=True),
    ColumnSpec("writes_to", T.ENUM, size=1, values=("mysql", "dynamodb")),
    ColumnSpec("generation", T.LONG, unsigned=True),
), ("id",))
SETTINGS = load_settings(tables=[{"source": "d.t"}], cutover={"fence_table": "r.fence"})
OPTS = ReaderOptions(max_batch_rows=2, max_batch_s=0.02, idle_checkpoint_s=0.05, heartbeat_s=0.05,
                     backoff_initial_s=0.01, backoff_max_s=0.02)

# One transaction: ints are inserted ids of d.t, (writes_to, generation) pairs are fence updates.
Step = int | tuple[str, int]


def fence_row(writes_to: str, generation: int) -> Row:
    return {"id": 1, "writes_to": writes_to, "generation": generation}


def binlog(txs: list[list[Step]]) -> MemoryBinlog:
    """Transaction i spans [100 i + 4, 100 i + 104); each step is a rows event 10 bytes long."""
    log = MemoryBinlog()
    fence = fence_row("mysql", 0)
    for i, steps in enumerate(txs):
        start = 100 * i + 4
        items: list[Item] = [TxBegin(f"0-1-{i + 1}", FILE, start, 0)]
        for j, step in enumerate(steps):
            offset = start + 10 * (j + 1)
            if isinstance(step, int):
                items.append(RowsChange(DATA, "insert", [({"id": step},)], FILE, offset, 0))
            else:
                new = fence_row(*step)
                items.append(RowsChange(FENCE, "update", [(fence, new)], FILE, offset, 0))
                fence = new
        items.append(TxEnd(FILE, start + 100, 1000 + i))
        log.append(items)
    return log


def run(log: MemoryBinlog, kafka: MemoryBroker, *, fence_now: Callable[[], int] | None = None,
        fail_source_after: int | None = None) -> Reader:
    if fail_source_after is not None:
        log.fail_next_open_after(fail_source_after)
    reader = Reader(SETTINGS, source_factory=log.open, sink_factory=kafka.sink,
                    positions=StartPositions(lambda: (FILE, 4), lambda: [FILE], None), options=OPTS,
                    fence_generation=fence_now)
    reader.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (reader.committed and reader.committed.offset >= log.end[1]):
        time.sleep(0.01)
    reader.stop()
    assert reader.error is None, reader.error
    return reader


def generations(kafka: MemoryBroker) -> dict[int, int]:
    """id -> the generation of its event's version (one event per id in these tests)."""
    out: dict[int, int] = {}
    for record in kafka.records:
        ev = ChangeEvent.from_json(record.value)
        assert isinstance(ev.pk["id"], int)
        assert ev.table == "t", "the fence table produces no event"
        out[ev.pk["id"]] = split_version(ev.version)[0]
    return out


def test_a_fence_change_sets_the_generation_of_every_later_event() -> None:
    kafka = MemoryBroker()
    run(binlog([[1], [("dynamodb", 1)], [2], [("mysql", 2)], [3]]), kafka)
    # 4 -> 5 keeps the last MySQL generation (echoes); 5 -> 4 moves MySQL's changes above phase 5's
    assert generations(kafka) == {1: 0, 2: 0, 3: 2}
    assert [r.topic for r in kafka.records] == [SETTINGS.kafka.topic_prefix + ".d.t"] * 3


def test_within_a_transaction_the_events_after_the_fence_row_carry_its_generation() -> None:
    kafka = MemoryBroker()
    run(binlog([[1, ("mysql", 4), 2]]), kafka)
    assert generations(kafka) == {1: 0, 2: 4}


def test_each_checkpoint_carries_the_generation_in_force_at_its_position() -> None:
    log = binlog([[1], [("dynamodb", 1)], [("mysql", 2)], [2]])
    out: queue.Queue[QueueItem] = queue.Queue()
    pump = Pump(log.open(StartAt(file=FILE, offset=4)), {"d.t": "topic"}, GtidState(""), out,
                fence_table="r.fence")
    pump.start()
    checkpoints: list[Checkpoint] = []
    while len(checkpoints) < 4:
        item = out.get(timeout=5)
        if isinstance(item, CompleteTx):
            checkpoints.append(item.checkpoint)
    pump.halt.set()
    pump.source.close()
    pump.join(5)
    # after the switch to DynamoDB MySQL's changes still carry 0; after the switch back, 2
    assert [(cp.offset, cp.generation) for cp in checkpoints] == [(104, 0), (204, 0), (304, 2), (404, 2)]


def test_the_versions_base_is_the_binlog_position_whatever_the_generation() -> None:
    kafka = MemoryBroker()
    run(binlog([[("mysql", 2), 1]]), kafka)
    (record,) = kafka.records
    ev = ChangeEvent.from_json(record.value)
    assert split_version(ev.version) == (2, ev.pos.version)


def test_a_fresh_start_takes_the_fence_row_as_it_is_now_and_anchors_it() -> None:
    kafka = MemoryBroker()
    asked: list[int] = []

    def fence_now() -> int:
        asked.append(6)
        return 6

    run(binlog([[1], [("mysql", 8)], [2]]), kafka, fence_now=fence_now)
    assert asked == [6], "read once"
    assert kafka.checkpoints[0].offset == 4 and kafka.checkpoints[0].generation == 6
    assert generations(kafka) == {1: 6, 2: 8}


def test_a_restart_resumes_with_the_checkpoints_generation_not_the_fence_now() -> None:
    log = binlog([[1], [("mysql", 2)], [2], [3], [("mysql", 4)], [4]])
    kafka = MemoryBroker()
    kafka.checkpoints.append(Checkpoint(FILE, 304, "0-1-3", "0-1-3", generation=2))  # after id 2

    def fence_now() -> int:
        raise AssertionError("a restart from a checkpoint must not read the fence row")

    run(log, kafka, fence_now=fence_now)
    assert generations(kafka) == {3: 2, 4: 4}


def test_a_source_failure_resumes_with_the_committed_generation() -> None:
    kafka = MemoryBroker()
    # The connection drops inside the transaction after the fence change, before its end.
    reader = run(binlog([[1], [("mysql", 2)], [2, 3], [4]]), kafka, fail_source_after=9)
    assert generations(kafka) == {1: 0, 2: 2, 3: 2, 4: 2}
    assert sum(s.value for m in reader.metrics.retries.collect() for s in m.samples
               if s.name.endswith("_total")) >= 1


@pytest.mark.parametrize(
    "bad",
    [
        ("mysql", 0),  # below the generation in force
        ("dynamodb", 2),  # MySQL generation 1: below
        ("", 9),  # an ENUM index out of range decodes to ""
        ("mysql", 4096),  # beyond the 11 bits of a version
    ],
)
def test_a_fence_row_that_would_move_the_generation_back_or_is_malformed_is_ignored_and_counted(
    bad: tuple[str, int],
) -> None:
    kafka = MemoryBroker()
    reader = run(binlog([[("mysql", 2)], [1], [bad], [2]]), kafka)
    assert generations(kafka) == {1: 2, 2: 2}
    ignored = [s.value for m in reader.metrics.fence_rows_ignored.collect() for s in m.samples
               if s.name.endswith("_total")]
    assert ignored == [1.0]


def test_a_deleted_fence_row_changes_nothing() -> None:
    log = binlog([[("mysql", 2)], [1]])
    delete = RowsChange(FENCE, "delete", [(fence_row("mysql", 2),)], FILE, 214, 0)
    log.append([TxBegin("0-1-3", FILE, 204, 0), delete,
                RowsChange(DATA, "insert", [({"id": 2},)], FILE, 224, 0), TxEnd(FILE, 304, 1002)])
    kafka = MemoryBroker()
    run(log, kafka)
    assert generations(kafka) == {1: 2, 2: 2}


def test_a_fence_change_logged_as_a_statement_stops_the_reader() -> None:
    log = binlog([[1]])
    log.append([TxBegin("0-1-2", FILE, 104, 0),
                Statement("UPDATE fence SET generation = 2 WHERE id = 1", "r", FILE, 114, 0),
                TxEnd(FILE, 204, 1001)])
    kafka = MemoryBroker()
    reader = Reader(SETTINGS, source_factory=log.open, sink_factory=kafka.sink,
                    positions=StartPositions(lambda: (FILE, 4), lambda: [FILE], None), options=OPTS)
    reader.start()
    assert reader.join(10)
    assert isinstance(reader.error, UnmappableSchemaError)
    assert "the fence table r.fence" in str(reader.error)
    assert generations(kafka) == {1: 0}, "everything before it is committed"


def test_the_applied_watermark_compares_binlog_positions_never_generations() -> None:
    at_500 = WatermarkSnapshot(ReaderMark("", binlog_version(FILE, 500), {}))  # the reader's marker: a base
    assert at_500.position_covers(version=binlog_version(FILE, 400, 0, generation=5))
    assert at_500.position_covers(version=binlog_version(FILE, 500, 0, generation=5))
    assert not at_500.position_covers(version=binlog_version(FILE, 600, 0, generation=0))
    no_position = WatermarkSnapshot(ReaderMark("", -1, {}))
    assert not no_position.position_covers(version=binlog_version(FILE, 4, 0, generation=2))

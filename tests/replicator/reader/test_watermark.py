"""The reader's applied watermark: the publisher (throttle, trailing write, failures) and what
the reader loop tells it (positions of unmapped transactions, the GTID position at a head start).
Pure: in-memory binlog, broker and control store."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from replicator.control import ControlStore, names
from replicator.errors import ControlStoreUnavailable
from replicator.events import Row, binlog_version
from replicator.reader.checkpoint import Checkpoint
from replicator.reader.gtid import StartAt
from replicator.reader.items import Item, RowsChange, TxBegin, TxEnd
from replicator.reader.runner import Reader, ReaderOptions
from replicator.reader.schema import ColumnSpec, T, build_schema
from replicator.reader.start import StartPositions
from replicator.reader.watermark import WatermarkPublisher
from replicator.settings import Settings, load_settings
from replicator.testing import (
    MemoryBinlog,
    MemoryBroker,
    MemoryChangeSource,
    MemoryControlStore,
    MemorySourceServer,
)

FILE = "bin.000001"
TOPIC = "cdc.d.t"
SCHEMA = build_schema("d", "t", (ColumnSpec("id", T.LONG),), ("id",))


def settings() -> Settings:
    return load_settings(tables=[{"source": "d.t"}], kafka={"topic_prefix": "cdc"})


def cp(offset: int, gtid: str = "") -> Checkpoint:
    return Checkpoint(FILE, offset, None, gtid)


def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


class CountingStore(MemoryControlStore):
    """Counts marker writes; ``down`` makes them fail."""

    def __init__(self) -> None:
        super().__init__()
        self.puts = 0
        self.down = False

    def put_marker(self, name: str, doc: dict[str, Any]) -> None:
        if self.down:
            raise ControlStoreUnavailable("down")
        self.puts += 1
        super().put_marker(name, doc)


def publisher(store: ControlStore, **kw: Any) -> WatermarkPublisher:
    return WatermarkPublisher(settings(), store_factory=lambda _s: store, **kw)


def marker(store: ControlStore) -> dict[str, Any] | None:
    return store.get_marker(names.READER_WATERMARK)


# --------------------------------------------------------------------------- the publisher

def test_a_committed_state_is_published_with_its_position_version_and_offsets() -> None:
    store = MemoryControlStore()
    pub = publisher(store)
    pub.committed(cp(500, "0-1-7"), {(TOPIC, 0): 41, (TOPIC, 1): -1})
    pub.close()
    doc = marker(store)
    assert doc is not None
    assert (doc["gtid_position"], doc["version"], doc["position"]) == ("0-1-7", binlog_version(FILE, 500),
                                                                      f"{FILE}:500")
    assert doc["offsets"] == {f"{TOPIC}:0": 41, f"{TOPIC}:1": -1}


def test_a_burst_is_throttled_and_its_last_state_still_goes_out() -> None:
    store = CountingStore()
    pub = publisher(store, interval_s=0.2)
    for i in range(200):
        pub.committed(cp(100 + i, f"0-1-{i}"), {(TOPIC, 0): i})
    eventually(lambda: (marker(store) or {}).get("gtid_position") == "0-1-199")
    pub.close()
    assert store.puts <= 3, "one write per interval: the first and the trailing one"


def test_nothing_is_published_before_the_offsets_are_known() -> None:
    store = MemoryControlStore()
    pub = publisher(store)
    pub.settled(cp(900, "0-1-9"))
    pub.close()
    assert marker(store) is None


def test_a_settled_position_advances_the_marker_with_the_committed_offsets() -> None:
    store = MemoryControlStore()
    pub = publisher(store, interval_s=0.01)
    pub.committed(cp(500, "0-1-7"), {(TOPIC, 0): 41})
    pub.settled(cp(900, "0-1-9"))
    pub.close()
    doc = marker(store)
    assert doc is not None and doc["gtid_position"] == "0-1-9" and doc["offsets"] == {f"{TOPIC}:0": 41}


def test_the_marker_never_moves_back_within_a_process() -> None:
    store = MemoryControlStore()
    pub = publisher(store, interval_s=0.01)
    pub.committed(cp(900, "0-1-9"), {(TOPIC, 0): 41})
    pub.committed(cp(500, "0-1-7"), {(TOPIC, 0): 30})  # a new sink read an older checkpoint back
    pub.close()
    doc = marker(store)
    assert doc is not None and doc["gtid_position"] == "0-1-9" and doc["offsets"] == {f"{TOPIC}:0": 41}


def test_offsets_the_sink_lost_track_of_stop_publishing_until_a_full_report() -> None:
    store = CountingStore()
    pub = publisher(store, interval_s=0.01)
    pub.committed(cp(500), {(TOPIC, 0): 1})
    eventually(lambda: store.puts == 1)
    pub.committed(cp(600), None)
    pub.settled(cp(700))
    time.sleep(0.05)
    assert store.puts == 1
    pub.committed(cp(800), {(TOPIC, 0): 2})
    pub.close()
    doc = marker(store)
    assert doc is not None and doc["position"] == f"{FILE}:800"


def test_a_store_that_is_down_is_counted_and_retried_never_raised() -> None:
    store = CountingStore()
    store.down = True
    failures: list[int] = []
    pub = publisher(store, interval_s=0.01, retry_s=0.05, on_failure=lambda: failures.append(1))
    pub.committed(cp(500, "0-1-7"), {(TOPIC, 0): 1})
    eventually(lambda: len(failures) >= 2)
    store.down = False
    eventually(lambda: marker(store) is not None)
    pub.close()
    assert pub.failures == len(failures) >= 2


# --------------------------------------------------------------------------- what the loop tells it

class Recorder:
    """A ``PositionListener`` that checks, at each call, that the broker holds every mapped row
    of the transactions up to the position (what makes a settled position claimable)."""

    def __init__(self, broker: MemoryBroker, rows_before: Callable[[int], int]) -> None:
        self.broker, self.rows_before = broker, rows_before
        self.settled_at: list[Checkpoint] = []
        self.unclaimable: list[int] = []
        self.closed = threading.Event()

    def settled(self, checkpoint: Checkpoint) -> None:
        self.settled_at.append(checkpoint)
        if len(self.broker.records) < self.rows_before(checkpoint.offset):
            self.unclaimable.append(checkpoint.offset)

    def close(self) -> None:
        self.closed.set()


def mixed_binlog(kinds: str) -> tuple[MemoryBinlog, Callable[[int], int]]:
    """``m``: a transaction with one mapped row, ``u``: one without (unmapped tables); each 100 bytes."""
    txs: list[list[Item]] = []
    ends: list[tuple[int, int]] = []  # (end offset, mapped rows so far)
    rows = 0
    for i, kind in enumerate(kinds):
        start = 100 * i + 4
        items: list[Item] = [TxBegin(f"0-1-{i + 1}", FILE, start, 0)]
        if kind == "m":
            row: tuple[Row, ...] = ({"id": i},)
            items.append(RowsChange(SCHEMA, "insert", [row], FILE, start + 10, 0))
            rows += 1
        items.append(TxEnd(FILE, start + 100, 1000 + i))
        txs.append(items)
        ends.append((start + 100, rows))

    def rows_before(offset: int) -> int:
        return max((n for end, n in ends if end <= offset), default=0)

    return MemoryBinlog(txs), rows_before


def start_reader(log: MemoryBinlog, broker: MemoryBroker, listener: Recorder,
                 gtid_at: Callable[[str, int], str] | None = None) -> Reader:
    """A reader over ``log``, its transactions arriving 50 ms apart (each batch commits alone)."""
    server = MemorySourceServer(head=(FILE, 4), binlog_files=[FILE])

    def paced(start: StartAt) -> MemoryChangeSource:
        def items() -> Iterator[Item]:
            for tx in log.transactions:
                yield from tx
                time.sleep(0.05)
        return MemoryChangeSource(items())

    reader = Reader(settings(), source_factory=paced, sink_factory=broker.sink,
                    positions=StartPositions(server.head, server.binlog_files, None),
                    options=ReaderOptions(max_batch_s=0.02, idle_checkpoint_s=60, heartbeat_s=0.05),
                    watermark=listener, gtid_at=gtid_at)
    reader.start()
    return reader


def test_positions_after_unmapped_transactions_are_settled_without_a_kafka_commit() -> None:
    log, rows_before = mixed_binlog("muumuuu")
    broker = MemoryBroker()
    listener = Recorder(broker, rows_before)
    reader = start_reader(log, broker, listener)
    try:
        eventually(lambda: bool(listener.settled_at) and listener.settled_at[-1].offset == log.end[1])
        committed = broker.checkpoints[-1].offset
    finally:
        reader.stop()  # commits the tail
    assert listener.unclaimable == [], "a position was settled before its mapped rows were committed"
    assert committed < log.end[1], "settled before the tail of unmapped transactions was committed"
    assert listener.settled_at[-1].gtid_position == "0-1-7"
    assert listener.closed.is_set()


def test_a_start_without_a_gtid_position_asks_the_server_for_it() -> None:
    log, rows_before = mixed_binlog("m")
    broker = MemoryBroker()
    asked: list[tuple[str, int]] = []

    def gtid_at(file: str, offset: int) -> str:
        asked.append((file, offset))
        return "3-1-5"

    reader = start_reader(log, broker, Recorder(broker, rows_before), gtid_at)
    try:
        eventually(lambda: bool(broker.checkpoints) and broker.checkpoints[-1].offset == log.end[1])
    finally:
        reader.stop()
    assert asked == [(FILE, 4)]
    assert broker.checkpoints[0].gtid_position == "3-1-5", "the anchor carries the server's position"
    assert broker.checkpoints[-1].gtid_position == "0-1-1,3-1-5"

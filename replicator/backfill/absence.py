"""The backfill and foreign-key cascades: copy order, and the rows a cascade removed unseen.

The writer reproduces what InnoDB cascades below the binlog by following each cascading foreign
key from the parent's change to the child items in DynamoDB, level by level (docs/design.md,
"Foreign-key cascades"). A level it cannot see breaks the chain: a child row ``C`` that the
backfill had not copied yet when its parent's delete (version ``V``) cascaded is in no DynamoDB
table, so the cascade cannot follow it to ``C``'s own children, which may be there already
(inserted through the stream, or copied from an earlier chunk of their table) and which InnoDB
deleted with ``C``. Nothing in the binlog ever tells the writer about them.

Two measures make the snapshot converge anyway (DESIGN §4 invariant 5), in the versions and
tombstones of §5:

- :func:`copy_order` copies a cascade's parent tables before their children, so a grandchild's
  chunk is read after every chunk of its parent table: a grandchild row its parent's cascade
  changed before that is copied as InnoDB left it (deleted: absent; moved: with its new key).
- :class:`AbsenceSweep`, once every chunk and every stream change up to the binlog position
  ``P`` read after the copy are applied, scans the tables a cascade reaches at depth two or more
  (:func:`swept_tables`) and reads the rows of the items it finds from MySQL exactly like a chunk
  (one consistent snapshot with its position ``S`` >= ``P``). A snapshot chunk says which rows
  exist *and which do not*: an item whose row is absent at ``S`` becomes a delete event at ``S``'s
  snapshot version (the writer leaves a tombstone and cascades it further, since a table swept may
  have children of its own), and a row whose cascading foreign-key columns differ from the item's
  is sent again as a snapshot row at ``S``. Both are version-conditional in the writer like any
  chunk: a change after ``S`` wins, and every change the sweep could undo is at or before ``S``
  (an item's row absent at ``S`` was deleted at or before it, or after it, and that later delete
  reaches the writer on its own).

Pure parts (:func:`copy_order`, :func:`swept_tables`, :func:`sweep_events`) take no clients.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog

from replicator.adapters import kafka
from replicator.adapters.dynamodb import dynamo_errors
from replicator.backfill.publish import SnapshotPublisher, wait_until_applied
from replicator.backfill.source import Chunk, SnapshotSource
from replicator.catalog import TableShape
from replicator.errors import BrokerUnavailable, TransientError
from replicator.events import (
    ChangeEvent,
    Position,
    Row,
    TxInfo,
    binlog_sequence,
    schema_fingerprint,
    snapshot_version,
)
from replicator.mapping import ORIGIN_APP, ORIGIN_ATTR, TableMapper, is_tombstone
from replicator.mapping.foreign_keys import CascadeGraph
from replicator.mapping.names import TABLE_ATTR
from replicator.reader.sink import read_last_checkpoint
from replicator.settings import Settings
from replicator.topics import table_topic

log = structlog.get_logger("backfill")

T = TypeVar("T")


def copy_order(sources: Sequence[str], graph: CascadeGraph) -> list[str]:
    """``sources`` with every cascade's parent table before its child tables, otherwise in the
    given order (a self-reference, or a cycle, leaves the order of the tables on it as given)."""
    parents = {s: {fk.parent for fk in graph.of_child(s) if fk.parent != s and fk.parent in sources}
               for s in sources}
    out: list[str] = []
    todo = list(sources)
    while todo:
        ready = next((s for s in todo if not (parents[s] - set(out))), todo[0])  # a cycle: as given
        out.append(ready)
        todo.remove(ready)
    return out


def swept_tables(graph: CascadeGraph) -> list[str]:
    """The child tables a cascade reaches through a row of another child table (depth two or more,
    self-references included): a row of that table the backfill had not copied breaks the chain."""
    children = {fk.child for fk in graph.edges}
    return sorted({fk.child for fk in graph.edges if fk.parent in children})


def sweep_events(shape: TableShape, mapper: TableMapper, fk_columns: Sequence[str],
                 items: Sequence[Row], chunk: Chunk) -> list[ChangeEvent]:
    """What makes ``items`` (rows of DynamoDB items) equal to the rows ``chunk`` read for their keys:
    a delete for a row MySQL no longer has, the row again when a cascading foreign key differs."""
    version = snapshot_version(chunk.binlog_file, chunk.binlog_offset, chunk.generation)
    pos = Position(chunk.binlog_file, chunk.binlog_offset, 0, None)
    fingerprint = schema_fingerprint(shape.columns)
    now_ms = int(time.time() * 1000)
    found = {mapper.key_text(r): r for r in chunk.rows}
    events = []
    for i, item in enumerate(items):
        row = found.get(mapper.key_text(item))
        tx = TxInfo(f"snapshot:{chunk.binlog_file}:{chunk.binlog_offset}", i)
        if row is None:
            pk = {k: item.get(k) for k in shape.pk}
            events.append(ChangeEvent("d", shape.db, shape.table, pk, item, None, pos, version, now_ms, tx,
                                      fingerprint, shape.columns))
        elif any(row.get(c) != item.get(c) for c in fk_columns):
            pk = {k: row[k] for k in shape.pk}
            events.append(ChangeEvent("r", shape.db, shape.table, pk, None, row, pos, version, now_ms, tx,
                                      fingerprint, shape.columns))
    return events


@dataclass
class SweepResult:
    scanned: int = 0
    deleted: int = 0
    rewritten: int = 0
    applied: bool = False


class AbsenceSweep:
    """See the module docstring. ``run`` returns once the writer applied what it published, or
    ``wait_timeout_s`` (0: no limit) passed at one of its two waits (then ``applied`` is False)."""

    def __init__(self, settings: Settings, src: SnapshotSource, client: Any, graph: CascadeGraph, *,
                 keys_per_read: int, wait_timeout_s: float, stop: threading.Event,
                 pace: Callable[[int], object] | None = None) -> None:
        self.settings = settings
        self.src = src
        self.client = client
        self.graph = graph
        self.keys_per_read = max(1, keys_per_read)
        self.wait_timeout_s = wait_timeout_s
        self.stop = stop
        self._pace = pace or (lambda n: None)

    def run(self, shapes: Sequence[TableShape]) -> SweepResult:
        result = SweepResult()
        swept = [s for s in shapes if s.source in set(swept_tables(self.graph))]
        if not swept:
            result.applied = True
            return result
        if not self._stream_applied():
            return result
        publisher = SnapshotPublisher(self.settings)
        publisher.start()
        try:
            for shape in swept:
                if self.stop.is_set():
                    return result
                self._sweep(shape, publisher, result)
            publisher.flush()
        finally:
            publisher.close()
        log.info("backfill_absence_swept", tables=[s.source for s in swept], scanned=result.scanned,
                 deleted=result.deleted, rewritten=result.rewritten)
        result.applied = wait_until_applied(self.settings, dict(publisher.acked),
                                            timeout_s=self.wait_timeout_s, stop=self.stop)
        return result

    def _stream_applied(self) -> bool:
        """Wait until the writer applied every stream change up to the binlog head read now."""
        file, offset = self.src.head()
        deadline = None if self.wait_timeout_s <= 0 else time.monotonic() + self.wait_timeout_s
        key = self.settings.transactional_id.encode()
        log.info("backfill_waiting_for_reader", head=f"{file}:{offset}",
                 why="the absence sweep starts once the stream up to here is applied")
        while not self.stop.is_set():
            try:
                cp = read_last_checkpoint(self.settings, key)
            except BrokerUnavailable as exc:
                log.warning("backfill_checkpoint_unread", error=str(exc))
                cp = None
            if cp is not None and (binlog_sequence(cp.file), cp.offset) >= (binlog_sequence(file), offset):
                break
            if deadline is not None and time.monotonic() > deadline:
                log.warning("backfill_absence_not_swept", reason="the reader did not reach the binlog head",
                            head=f"{file}:{offset}", hint="start `replicator run` and rerun the backfill")
                return False
            self.stop.wait(1.0)
        topics = [table_topic(self.settings.kafka.topic_prefix, t) for t in sorted(self.graph.family)
                  if t in {m.source for m in self.settings.tables}]
        # The reader's transactions end in a commit marker, which no consumer commits past: the last
        # change sits at or below end - 2 (a snapshot row at end - 1 is not waited for, nor needed).
        ends = self._retrying("reading end offsets", lambda: self._end_offsets(topics))
        targets = {tp: end - 2 for tp, end in ends.items() if end >= 2}
        log.info("backfill_waiting_for_writer", what="the stream up to the binlog head",
                 head=f"{file}:{offset}")
        return wait_until_applied(self.settings, targets, timeout_s=self.wait_timeout_s, stop=self.stop)

    def _end_offsets(self, topics: list[str]) -> dict[tuple[str, int], int]:
        reader = kafka.consumer(self.settings.kafka, self.settings.writer_group)  # never joins the group
        try:
            with kafka.kafka_errors("reading the end offsets of the cascade tables' topics"):
                meta = reader.list_topics(timeout=10)
                return {(t, p): int(reader.get_watermark_offsets(kafka.TopicPartition(t, p), timeout=10,
                                                                 cached=False)[1])
                        for t in topics if t in meta.topics for p in meta.topics[t].partitions}
        finally:
            reader.close()

    def _sweep(self, shape: TableShape, publisher: SnapshotPublisher, result: SweepResult) -> None:
        mapping = next(t for t in self.settings.tables if t.source == shape.source)
        mapper = TableMapper(mapping, shape.columns, shape.pk)
        fk_columns = sorted({c for fk in self.graph.of_child(shape.source) for c in fk.columns})
        topic = table_topic(self.settings.kafka.topic_prefix, shape.source)
        target = self.settings.dynamodb.table_prefix + mapping.target_name
        batch: list[Row] = []
        for item in self._live_items(target, shape.source):
            batch.append(mapper.to_row(item))
            if len(batch) >= self.keys_per_read:
                self._check(shape, mapper, fk_columns, batch, topic, publisher, result)
                batch = []
            if self.stop.is_set():
                return
        if batch:
            self._check(shape, mapper, fk_columns, batch, topic, publisher, result)

    def _check(self, shape: TableShape, mapper: TableMapper, fk_columns: Sequence[str], items: list[Row],
               topic: str, publisher: SnapshotPublisher, result: SweepResult) -> None:
        keys = [[r.get(k) for k in shape.pk] for r in items]
        chunk = self._retrying(f"reading rows of {shape.source}", lambda: self.src.read_keys(shape, keys))
        for event in sweep_events(shape, mapper, fk_columns, items, chunk):
            publisher.publish(topic, event.key_bytes(), event.to_json())
            if event.op == "d":
                result.deleted += 1
                log.info("backfill_absent_row", table=shape.source, key=mapper.key_text(event.row),
                         version=event.version)
            else:
                result.rewritten += 1
        result.scanned += len(items)
        self._pace(len(items))

    def _scan_page(self, target: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        with dynamo_errors("scanning for rows a cascade removed", target):
            page: dict[str, Any] = self.client.scan(**kwargs)
        return page

    def _retrying(self, what: str, request: Callable[[], T]) -> T:
        """``request()``, again every 2 s while it fails with a transient error (until stopped)."""
        while True:
            try:
                return request()
            except TransientError as exc:
                if self.stop.is_set():
                    raise
                log.warning("backfill_sweep_retrying", what=what, error=str(exc))
                self.stop.wait(2.0)

    def _live_items(self, target: str, source: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"TableName": target, "ConsistentRead": True}
        while True:
            page = self._retrying(f"scanning {target}", lambda: self._scan_page(target, kwargs))
            for item in page.get("Items", ()):
                if is_tombstone(item) or item.get(ORIGIN_ATTR, {}).get("S") == ORIGIN_APP:
                    continue
                if item.get(TABLE_ATTR, {}).get("S", source) != source:  # a shared table's other rows
                    continue
                yield item
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

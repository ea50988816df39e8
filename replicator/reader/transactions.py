"""Transaction assembly: binlog items -> complete MySQL transactions, in a thread of their own.

The :class:`Pump` iterates a :class:`~replicator.reader.ports.ChangeSource` and puts on a
bounded queue, for the reader loop (:mod:`.runner`):

- a :class:`CompleteTx` per MySQL transaction: its change events as Kafka records, stamped
  with the transaction's commit time, and the checkpoint after it (DESIGN §4 invariant 4:
  checkpoints sit on transaction boundaries);
- :data:`CAUGHT_UP` when the server reports nothing newer (its heartbeat);
- a :class:`SourceFailure` with whatever stopped the source, then nothing more.

Statements are judged here: TRUNCATE of a mapped table, or a change to one logged as a
statement, has no row images, so the transaction carrying it fails with
:class:`~replicator.errors.UnmappableSchemaError` once it is complete (everything before it
is still committed).

The fence row (``cutover.fence_table``, :mod:`replicator.fence`) is followed here too: its row
changes produce no event; each one sets the generation of the versions of every later event
(:func:`~replicator.fence.mysql_generation` of the new row), from the next rows event on, in the
same transaction included. The generation becomes the pump's own only when its transaction is
complete, and the checkpoint after a transaction carries it, so a restart from any checkpoint
resumes with the generation in force there. A generation never goes back: a fence row whose
MySQL generation is lower than the one in force, or that is not a fence state at all, is
logged, counted (``on_fence_ignored``) and ignored, so versions stay monotonic (stopping would
not help: the same binlog event would stop every restart); a deleted fence row changes nothing.
"""

from __future__ import annotations

import queue
import struct
import threading
from collections import Counter as Tally
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from replicator.errors import UnmappableSchemaError
from replicator.fence import mysql_generation, parse_fence
from replicator.reader.changes import TxContext, ddl_tables, dml_tables, truncated_tables
from replicator.reader.checkpoint import Checkpoint
from replicator.reader.gtid import GtidState
from replicator.reader.items import Heartbeat, RowsChange, Statement, TxBegin, TxEnd
from replicator.reader.ports import ChangeSource
from replicator.reader.rowcodec import PythonEncoder, RowEncoder, translate_errors

__all__ = ["CAUGHT_UP", "CaughtUp", "CompleteTx", "Pump", "QueueItem", "RowBoundedQueue", "SourceFailure"]

log = structlog.get_logger("replicator.reader")

# What row bytes that do not decode raise, in either path (rowcodec); UnmappableSchemaError then.
_DECODE_ERRORS = (UnicodeError, IndexError, ValueError, struct.error)


@dataclass
class CompleteTx:
    """One complete MySQL transaction: its records and the resume position after it."""

    records: list[tuple[str, bytes, bytes]]  # (topic, key, value)
    rows: int  # row changes of mapped tables
    counts: Tally[tuple[str, str]]  # events per (table, op)
    checkpoint: Checkpoint


@dataclass(frozen=True)
class SourceFailure:
    """What stopped the source; the pump puts nothing after it."""

    error: BaseException


@dataclass(frozen=True)
class CaughtUp:
    """The server has nothing newer to send."""


CAUGHT_UP = CaughtUp()
QueueItem = CompleteTx | SourceFailure | CaughtUp


class RowBoundedQueue(queue.Queue[QueueItem]):
    """The pump's hand-over queue, bounded by the rows it holds rather than by items, so that a
    binlog backlog of large transactions cannot fill memory ahead of Kafka (issue 15): a ``put``
    waits while the queue holds ``max_rows`` or more (each item weighs its rows plus one). An empty
    queue takes any transaction, however large: a MySQL transaction is never split."""

    def __init__(self, max_rows: int) -> None:
        super().__init__(max_rows)
        self.weight = 0

    @staticmethod
    def _weight(item: QueueItem) -> int:
        return 1 + (item.rows if isinstance(item, CompleteTx) else 0)

    def _qsize(self) -> int:
        return self.weight

    def _put(self, item: QueueItem) -> None:
        self.queue.append(item)
        self.weight += self._weight(item)

    def _get(self) -> QueueItem:
        item: QueueItem = self.queue.popleft()
        self.weight -= self._weight(item)
        return item


@dataclass
class _Builder:
    ctx: TxContext
    generation: int  # in force at this point of the transaction
    changes: list[tuple[RowsChange, int]] = field(default_factory=list)  # with their generation
    rows: int = 0
    counts: Tally[tuple[str, str]] = field(default_factory=Tally)
    fatal: str | None = None


class Pump(threading.Thread):
    """Reads the source and hands complete MySQL transactions to the main loop."""

    def __init__(self, source: ChangeSource, topics: Mapping[str, str], gtids: GtidState,
                 out: queue.Queue[QueueItem], *, fence_table: str | None = None, generation: int = 0,
                 on_fence_ignored: Callable[[], None] | None = None,
                 encoder: RowEncoder | None = None) -> None:
        super().__init__(name="binlog-pump", daemon=True)
        self.source = source
        self._encoder = encoder or PythonEncoder()
        self.halt = threading.Event()
        self._out = out
        self._gtids = gtids
        self._topics = topics
        self._fence = fence_table
        self._on_fence_ignored = on_fence_ignored
        self.generation = generation  # in force after the last complete transaction

    def _put(self, item: QueueItem) -> None:
        while not self.halt.is_set():
            try:
                self._out.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self._put(SourceFailure(exc))
        finally:
            self.source.close()

    def _run(self) -> None:
        tx: _Builder | None = None
        for item in self.source.items():
            if self.halt.is_set():
                return
            if isinstance(item, RowsChange):
                if tx is None:
                    tx = _Builder(TxContext(f"{item.file}:{item.offset}", None), self.generation)
                self._add_rows(tx, item)
            elif isinstance(item, TxBegin):
                ctx = TxContext(item.gtid or f"{item.file}:{item.offset}", item.gtid)
                tx = _Builder(ctx, self.generation)
            elif isinstance(item, TxEnd):
                self._finish(tx, item)
                tx = None
            elif isinstance(item, Statement):
                if tx is None:
                    tx = _Builder(TxContext(f"{item.file}:{item.offset}", None), self.generation)
                self._statement(tx, item)
            elif isinstance(item, Heartbeat):
                self._put(CAUGHT_UP)

    def _add_rows(self, tx: _Builder, change: RowsChange) -> None:
        if change.schema.source == self._fence:
            self._fence_change(tx, change)
            return
        tx.changes.append((change, tx.generation))

    def _fence_change(self, tx: _Builder, change: RowsChange) -> None:
        """A change of the fence row: the generation of what follows."""
        where = f"{change.file}:{change.offset}"
        if change.kind == "delete":
            log.warning("fence_row_deleted", table=self._fence, position=where, generation=tx.generation)
            return
        try:
            rows = list(change.rows)
        except _DECODE_ERRORS as exc:
            raise translate_errors(exc, change) from exc
        for images in rows:
            try:
                state = parse_fence(images[-1])
            except ValueError as exc:
                self._fence_ignored(where, f"not a fence state: {exc}", tx.generation)
                continue
            generation = mysql_generation(state)
            if generation < tx.generation:
                reason = (f"MySQL generation {generation} (writes_to {state.writes_to}, generation "
                          f"{state.generation}) is below the one in force")
                self._fence_ignored(where, reason, tx.generation)
                continue
            if generation != tx.generation:
                log.info("fence_generation_changed", position=where, writes_to=state.writes_to,
                         fence_generation=state.generation, generation=generation, previous=tx.generation)
            tx.generation = generation

    def _fence_ignored(self, where: str, reason: str, kept: int) -> None:
        log.error("fence_row_ignored", table=self._fence, position=where, reason=reason, generation=kept,
                  hint="only the switch protocol (replicator phase) may write the fence row")
        if self._on_fence_ignored is not None:
            self._on_fence_ignored()

    def _serialise(self, tx: _Builder, ts_ms: int) -> list[tuple[str, bytes, bytes]]:
        """The transaction's events, stamped with its commit time, as Kafka records."""
        records: list[tuple[str, bytes, bytes]] = []
        index = 0
        for change, generation in tx.changes:
            source = change.schema.source
            try:
                encoded = self._encoder.encode(change, tx.ctx, index, topic=self._topics[source], ts_ms=ts_ms,
                                               generation=generation)
            except _DECODE_ERRORS as exc:
                raise translate_errors(exc, change) from exc
            records += encoded.records
            for op, n in encoded.ops.items():
                if n:
                    tx.counts[(source, op)] += n
            tx.rows += encoded.rows
            index += len(encoded.records)
        return records

    def _statement(self, tx: _Builder, st: Statement) -> None:
        truncated = [t for t in truncated_tables(st.query, st.db) if t in self._topics]
        if truncated:
            tx.fatal = (f"TRUNCATE of mapped table {', '.join(truncated)} at {st.file}:{st.offset}: its "
                        "rows were deleted below the row level, so no change events exist for them")
            return
        statement_dml = [t for t in dml_tables(st.query, st.db) if t in self._topics or t == self._fence]
        if statement_dml:
            what = "the fence table" if statement_dml[0] == self._fence else "mapped table"
            tx.fatal = (f"a change to {what} {statement_dml[0]} at {st.file}:{st.offset} was "
                        "logged as a statement (a session with binlog_format=STATEMENT/MIXED), so it has no "
                        "row images; forbid that setting for the application's sessions")
            return
        touched = [t for t in ddl_tables(st.query, st.db) if t in self._topics]
        if touched:
            log.info("ddl_seen", tables=touched, file=st.file, offset=st.offset, statement=st.query[:200])

    def _finish(self, tx: _Builder | None, end: TxEnd) -> None:
        if tx is not None and tx.ctx.gtid:
            self._gtids.add(tx.ctx.gtid)
        if tx is not None and tx.fatal:
            raise UnmappableSchemaError(
                f"{tx.fatal}. Every event before it is committed. Empty the target table(s) and "
                "re-snapshot them (`replicator backfill`), then delete the checkpoint topic and restart the "
                f"reader with --from {end.file}:{end.next_offset}."
            )
        if tx is not None:
            self.generation = tx.generation
        cp = Checkpoint(end.file, end.next_offset, tx.ctx.gtid if tx else None, self._gtids.position(),
                        end.ts * 1000, generation=self.generation)
        if tx is None:
            self._put(CompleteTx([], 0, Tally(), cp))
        else:
            records = self._serialise(tx, end.ts * 1000)  # counts tx.rows
            self._put(CompleteTx(records, tx.rows, tx.counts, cp))

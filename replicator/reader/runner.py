"""The binlog reader loop: binlog -> change events -> Kafka transactions with checkpoints.

Exactly-once into Kafka (DESIGN §4 invariants 1, 3, 4)::

    pump thread:  binlog items -> complete MySQL transactions (records + the checkpoint after them)
    main loop:    begin Kafka tx -> produce the records of one or more complete MySQL transactions
                  -> produce the checkpoint record -> commit

A Kafka transaction holds whole MySQL transactions only, and the checkpoint record it carries
is the position after the last of them, so a ``read_committed`` consumer sees either all of a
MySQL transaction's events and the checkpoint past it, or neither. After any crash, the new
producer's ``init_transactions`` aborts what the old one left open, and reading resumes at
the last committed checkpoint: no gap, no duplicate.

Failures: a source failure (MySQL restart, network cut) commits the complete transactions
already produced, then resumes the binlog at that checkpoint after a backoff. A Kafka failure
drops the producer and everything uncommitted, and resumes from the checkpoint Kafka holds.
Fatal conditions (purged binlog, unmappable schema, TRUNCATE of a mapped table, bad binlog
settings, FK cascades) commit nothing further than the last complete transaction and raise.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from replicator.checkpoint import Checkpoint
from replicator.errors import FatalDataError, SourceUnavailable, TransientError, UnmappableSchemaError
from replicator.kafka_io import EventSink
from replicator.reader_metrics import ReaderMetrics
from replicator.settings import Settings
from replicator.source.changes import TxContext, build_events, ddl_tables, dml_tables, truncated_tables
from replicator.source.gtid import GtidState, StartAt
from replicator.source.items import ChangeSource, Heartbeat, RowsChange, Statement, TxBegin, TxEnd
from replicator.topics import checkpoint_topic, table_topic

log = structlog.get_logger("replicator.reader")


@dataclass(frozen=True)
class ReaderOptions:
    max_batch_rows: int = 5000  # commit the Kafka transaction once it holds this many row changes
    max_batch_s: float = 0.1  # ... or once it has been open this long
    linger_s: float = 0.02  # ... or once nothing more arrived for this long (low latency when idle)
    idle_checkpoint_s: float = 5.0  # commit a checkpoint-only transaction when only unmapped tables move
    heartbeat_s: float = 1.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 15.0
    queue_transactions: int = 2000
    kafka_timeout_s: float = 30.0  # a Kafka call (init, commit, checkpoint read) slower than this fails


@dataclass
class _Tx:
    """One complete MySQL transaction: its records and the resume position after it."""

    records: list[tuple[str, bytes, bytes]]
    rows: int
    counts: Tally[tuple[str, str]]
    checkpoint: Checkpoint


@dataclass
class _Failure:
    error: BaseException


_HEARTBEAT = object()
QueueItem = _Tx | _Failure | object


@dataclass
class _Builder:
    ctx: TxContext
    changes: list[RowsChange] = field(default_factory=list)
    rows: int = 0
    counts: Tally[tuple[str, str]] = field(default_factory=Tally)
    fatal: str | None = None


class _Pump(threading.Thread):
    """Reads the source and hands complete MySQL transactions to the main loop."""

    def __init__(self, source: ChangeSource, settings: Settings, gtids: GtidState,
                 out: queue.Queue[QueueItem]) -> None:
        super().__init__(name="binlog-pump", daemon=True)
        self.source = source
        self.halt = threading.Event()
        self._out = out
        self._gtids = gtids
        prefix = settings.kafka.topic_prefix
        self._topics = {t.source: table_topic(prefix, t.source) for t in settings.tables}

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
            self._put(_Failure(exc))
        finally:
            self.source.close()

    def _run(self) -> None:
        tx: _Builder | None = None
        for item in self.source.items():
            if self.halt.is_set():
                return
            if isinstance(item, RowsChange):
                if tx is None:
                    tx = _Builder(TxContext(f"{item.file}:{item.offset}", None))
                self._add_rows(tx, item)
            elif isinstance(item, TxBegin):
                tx = _Builder(TxContext(item.gtid or f"{item.file}:{item.offset}", item.gtid))
            elif isinstance(item, TxEnd):
                self._finish(tx, item)
                tx = None
            elif isinstance(item, Statement):
                if tx is None:
                    tx = _Builder(TxContext(f"{item.file}:{item.offset}", None))
                self._statement(tx, item)
            elif isinstance(item, Heartbeat):
                self._put(_HEARTBEAT)

    def _add_rows(self, tx: _Builder, change: RowsChange) -> None:
        tx.changes.append(change)
        tx.rows += len(change.rows)

    def _serialise(self, tx: _Builder, ts_ms: int) -> list[tuple[str, bytes, bytes]]:
        """The transaction's events, stamped with its commit time, as Kafka records."""
        records: list[tuple[str, bytes, bytes]] = []
        index = 0
        for change in tx.changes:
            events = build_events(change, tx.ctx, index, ts_ms=ts_ms)
            topic = self._topics[change.schema.source]
            for ev in events:
                records.append((topic, ev.key_bytes(), ev.to_json()))
                tx.counts[(ev.source, ev.op)] += 1
            index += len(events)
        return records

    def _statement(self, tx: _Builder, st: Statement) -> None:
        truncated = [t for t in truncated_tables(st.query, st.db) if t in self._topics]
        if truncated:
            tx.fatal = (f"TRUNCATE of mapped table {', '.join(truncated)} at {st.file}:{st.offset}: its "
                        "rows were deleted below the row level, so no change events exist for them")
            return
        statement_dml = [t for t in dml_tables(st.query, st.db) if t in self._topics]
        if statement_dml:
            tx.fatal = (f"a change to mapped table {statement_dml[0]} at {st.file}:{st.offset} was "
                        "logged as a statement (a session with binlog_format=STATEMENT/MIXED), so it has no "
                        "row images; forbid that setting for the application's sessions")
            return
        touched = [t for t in ddl_tables(st.query, st.db) if t in self._topics]
        if touched:
            log.info("ddl", tables=touched, file=st.file, offset=st.offset, statement=st.query[:200])

    def _finish(self, tx: _Builder | None, end: TxEnd) -> None:
        if tx is not None and tx.ctx.gtid:
            self._gtids.add(tx.ctx.gtid)
        cp = Checkpoint(end.file, end.next_offset, tx.ctx.gtid if tx else None, self._gtids.position(),
                        end.ts * 1000)
        if tx is not None and tx.fatal:
            raise UnmappableSchemaError(
                f"{tx.fatal}. Every event before it is committed. Empty the target table(s) and "
                "re-snapshot them (`replicator backfill`), then delete the checkpoint topic and restart the "
                f"reader with --from {end.file}:{end.next_offset}."
            )
        if tx is None:
            self._put(_Tx([], 0, Tally(), cp))
        else:
            self._put(_Tx(self._serialise(tx, end.ts * 1000), tx.rows, tx.counts, cp))


class Backoff:
    def __init__(self, initial: float, maximum: float) -> None:
        self._initial, self._max, self._next = initial, maximum, initial

    def next(self) -> float:
        delay, self._next = self._next, min(self._next * 2, self._max)
        return delay

    def reset(self) -> None:
        self._next = self._initial


class StartPositions:
    """Where to (re)start: the checkpoint, else --from, else the binlog head. Injected I/O."""

    def __init__(self, head: Callable[[], tuple[str, int]], binlog_files: Callable[[], list[str]],
                 explicit: StartAt | None) -> None:
        self._head, self._files, self._explicit = head, binlog_files, explicit

    def resolve(self, cp: Checkpoint | None) -> tuple[StartAt, str]:
        from replicator.source.checks import check_position_available

        if cp is not None:
            if self._explicit is not None:
                log.warning("from_ignored", reason="a checkpoint exists", checkpoint=cp.describe(),
                            requested=self._explicit.describe())
            check_position_available(cp.file, self._files(), "the checkpoint position")
            return StartAt(file=cp.file, offset=cp.offset), cp.gtid_position
        if self._explicit is not None:
            if self._explicit.file:
                check_position_available(self._explicit.file, self._files(), "the --from position")
            return self._explicit, (self._explicit.gtid or "")
        file, pos = self._head()
        return StartAt(file=file, offset=pos), ""


class LagListener(Protocol):
    """Told the reader's lag behind the server whenever it is known; closed when the reader stops."""

    def __call__(self, lag_s: float, checkpoint: Checkpoint | None) -> None: ...
    def close(self) -> None: ...


class _NoLagListener:
    def __call__(self, lag_s: float, checkpoint: Checkpoint | None) -> None:
        return None

    def close(self) -> None:
        return None


class Reader:
    """``run()`` streams until ``stop()``; usable in-process (tests) and from ``replicator run``."""

    def __init__(self, settings: Settings, *, source_factory: Callable[[StartAt], ChangeSource],
                 sink_factory: Callable[[], EventSink], positions: StartPositions,
                 options: ReaderOptions | None = None, metrics: ReaderMetrics | None = None,
                 stop_event: threading.Event | None = None,
                 preflight: Callable[[], None] | None = None,
                 on_lag: LagListener | None = None) -> None:
        self._settings = settings
        self._preflight = preflight
        # Told the lag whenever it is known (checkpoints, caught-up heartbeats): the control-store heartbeat.
        self._on_lag = on_lag or _NoLagListener()
        self._source_factory = source_factory
        self._sink_factory = sink_factory
        self._positions = positions
        self.options = options or ReaderOptions()
        self.metrics = metrics or ReaderMetrics()
        self.stop_event = stop_event or threading.Event()
        self.committed: Checkpoint | None = None
        self._thread: threading.Thread | None = None
        self._backoff = Backoff(self.options.backoff_initial_s, self.options.backoff_max_s)
        self.error: BaseException | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> threading.Thread:
        def target() -> None:
            try:
                self.run()
            except BaseException as exc:
                self.error = exc
                log.error("reader_failed", error=str(exc), kind=type(exc).__name__)

        self._thread = threading.Thread(target=target, name="binlog-reader", daemon=True)
        self._thread.start()
        return self._thread

    def join(self, timeout_s: float | None = None) -> bool:
        """Wait for the thread started by :meth:`start`; True once it has finished."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def stop(self, timeout_s: float = 30.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def run(self) -> None:
        try:
            self._run()
        finally:
            self._on_lag.close()

    def _run(self) -> None:
        backoff = self._backoff
        while not self.stop_event.is_set():
            try:
                if self._preflight is not None:
                    self._preflight()
                self._session(backoff)
                return
            except TransientError as exc:
                delay = backoff.next()
                self.metrics.retries.labels(reason=type(exc).__name__).inc()
                self.metrics.up.set(0)
                log.warning("reader_retry", kind=type(exc).__name__, error=str(exc),
                            retry_in_s=round(delay, 2))
                self.stop_event.wait(delay)

    # ------------------------------------------------------------------ one producer's life

    def _session(self, backoff: Backoff) -> None:
        sink = self._sink_factory()
        try:
            cp = sink.last_checkpoint()
            start, gtid_position = self._positions.resolve(cp)
            if cp is None:
                # Anchor the first start: a restart before the first commit must not re-read the head.
                if start.file:
                    cp = Checkpoint(start.file, start.offset or 4, None, gtid_position)
                    self._commit(sink, cp, opened=False)
            else:
                self._note_committed(cp)
            log.info("reader_start", position=start.describe(),
                     checkpoint_topic=checkpoint_topic(self._settings.kafka.topic_prefix))
            while not self.stop_event.is_set():
                outcome = self._stream(sink, start, gtid_position, backoff)
                if outcome is None:
                    return
                start, gtid_position = outcome
        finally:
            sink.close()

    def _stream(self, sink: EventSink, start: StartAt, gtid_position: str,
                backoff: Backoff) -> tuple[StartAt, str] | None:
        q: queue.Queue[QueueItem] = queue.Queue(self.options.queue_transactions)
        pump = _Pump(self._source_factory(start), self._settings, GtidState(gtid_position), q)
        pump.start()
        self.metrics.up.set(1)
        try:
            failure = self._drain(sink, q)
        finally:
            pump.halt.set()
            pump.join(self.options.heartbeat_s * 3 + 2)
            if pump.is_alive():
                pump.source.close()
                pump.join(5)
        if failure is None:
            return None
        if isinstance(failure, SourceUnavailable):
            delay = backoff.next()
            self.metrics.retries.labels(reason=type(failure).__name__).inc()
            self.metrics.up.set(0)
            log.warning("source_retry", error=str(failure), retry_in_s=round(delay, 2),
                        resume_at=self.committed.describe() if self.committed else start.describe())
            self.stop_event.wait(delay)
            if self.committed is None:
                return start, gtid_position
            cp = self.committed
            return StartAt(file=cp.file, offset=cp.offset), cp.gtid_position
        raise failure

    def _drain(self, sink: EventSink, q: queue.Queue[QueueItem]) -> BaseException | None:
        """Batch complete transactions into Kafka transactions until stopped or the source fails."""
        opts = self.options
        opened = False
        batch_rows = 0
        batch_bytes = 0
        batch_t0 = 0.0
        pending: Checkpoint | None = None
        counts: Tally[tuple[str, str]] = Tally()
        txs = 0
        last_commit = last_item = time.monotonic()

        def commit() -> None:
            nonlocal opened, batch_rows, batch_bytes, pending, txs, last_commit
            if pending is None:
                return
            self._commit(sink, pending, opened=opened, rows=batch_rows, counts=counts, txs=txs,
                         nbytes=batch_bytes)
            opened, batch_rows, batch_bytes, pending, txs = False, 0, 0, None, 0
            counts.clear()
            last_commit = time.monotonic()

        while True:
            if self.stop_event.is_set():
                commit()
                return None
            now = time.monotonic()
            if opened:
                timeout = max(0.0, min(batch_t0 + opts.max_batch_s, last_item + opts.linger_s) - now)
            else:
                timeout = 0.2
            try:
                item = q.get(timeout=timeout)
            except queue.Empty:
                if opened or (pending is not None and now - last_commit >= opts.idle_checkpoint_s):
                    commit()
                continue
            last_item = time.monotonic()
            if isinstance(item, _Tx):
                if item.records:
                    if not opened:
                        sink.begin()
                        opened, batch_t0 = True, time.monotonic()
                    for topic, key, value in item.records:
                        sink.send(topic, key, value)
                        batch_bytes += len(key) + len(value)
                    batch_rows += item.rows
                    counts.update(item.counts)
                pending = item.checkpoint
                txs += 1
                now = time.monotonic()
                if opened:
                    if batch_rows >= opts.max_batch_rows or now - batch_t0 >= opts.max_batch_s:
                        commit()
                elif now - last_commit >= opts.idle_checkpoint_s:
                    commit()  # only unmapped tables move: keep the checkpoint (and lag) current anyway
            elif isinstance(item, _Failure):
                if isinstance(item.error, FatalDataError | TransientError):
                    commit()  # complete transactions only: safe to keep
                else:
                    log.error("reader_unexpected_error", kind=type(item.error).__name__,
                              error=str(item.error))
                return item.error
            elif item is _HEARTBEAT:
                idle = time.monotonic() - last_commit >= opts.idle_checkpoint_s
                if opened or (pending is not None and idle):
                    commit()
                self.metrics.lag.set(0)  # the server has nothing newer: caught up
                self._on_lag(0.0, self.committed)

    def _commit(self, sink: EventSink, cp: Checkpoint, *, opened: bool, rows: int = 0,
                counts: Tally[tuple[str, str]] | None = None, txs: int = 0, nbytes: int = 0) -> None:
        if not opened:
            sink.begin()
        sink.commit(cp)
        m = self.metrics
        m.kafka_transactions.inc()
        m.rows.inc(rows)
        m.transactions.inc(txs)
        for (table, op), n in (counts or {}).items():
            m.events.labels(table=table, op=op).inc(n)
        m.bytes.inc(nbytes)
        self._note_committed(cp)
        if cp.ts_ms:
            lag = max(0.0, time.time() - cp.ts_ms / 1000)
            m.lag.set(lag)
            self._on_lag(lag, cp)
        self._backoff.reset()
        log.info("checkpoint", file=cp.file, offset=cp.offset, gtid=cp.gtid, rows=rows, transactions=txs)

    def _note_committed(self, cp: Checkpoint) -> None:
        self.committed = cp
        self.metrics.checkpoint(cp.file, cp.offset, time.time())

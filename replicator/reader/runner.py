"""The binlog reader loop: complete MySQL transactions -> Kafka transactions with checkpoints.

Exactly-once into Kafka (DESIGN §4 invariants 1, 3, 4)::

    pump thread:  binlog items -> complete MySQL transactions (records + the checkpoint after them),
                  see :mod:`.transactions`
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

Applied watermark (:mod:`replicator.reader.watermark`): the sink reports each committed
checkpoint with its data offsets; the loop reports (``PositionListener.settled``) positions
reached through transactions without mapped changes, which need no Kafka commit to be claimed.
A start without a GTID position (the binlog head, ``--from FILE:POS``) asks the server for the
position there (``gtid_at``), so that the checkpoints carry every domain from the first one on.

Version generation (docs/design.md): the pump follows the fence row's binlog events
(:mod:`.transactions`) and every checkpoint carries the generation in force at its position; a
restart resumes with the checkpoint's. A start without a checkpoint asks the server for the
fence row as it is now (``fence_generation``; 0 without one), after the start position was
resolved: a fence change in between is then also met in the binlog, so the events before it can
only carry the newer generation, never an older one than theirs.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import structlog

from replicator.backoff import Backoff
from replicator.errors import FatalDataError, SourceUnavailable, TransientError
from replicator.reader.checkpoint import Checkpoint
from replicator.reader.gtid import GtidState, StartAt
from replicator.reader.metrics import ReaderMetrics
from replicator.reader.ports import EventSink, LagListener, SinkFactory, SourceFactory
from replicator.reader.rowcodec import row_encoder
from replicator.reader.start import StartPositions
from replicator.reader.transactions import (
    CaughtUp,
    CompleteTx,
    Pump,
    QueueItem,
    RowBoundedQueue,
    SourceFailure,
)
from replicator.settings import Settings
from replicator.topics import checkpoint_topic, table_topic

__all__ = ["PositionListener", "Reader", "ReaderOptions"]

log = structlog.get_logger("replicator.reader")


@dataclass(frozen=True)
class ReaderOptions:
    max_batch_rows: int = 5000  # commit the Kafka transaction once it holds this many row changes
    max_batch_s: float = 0.1  # ... or once it has been open this long
    linger_s: float = 0.02  # ... or once nothing more arrived for this long (low latency when idle)
    idle_checkpoint_s: float = 5.0  # commit a checkpoint-only transaction when only unmapped tables move
    heartbeat_s: float = 1.0
    backoff_initial_s: float = 0.5  # retry waits: full jitter below initial * 2**attempt ...
    backoff_max_s: float = 15.0  # ... capped at this
    queue_rows: int = 20_000  # rows (plus one per transaction) buffered between the binlog and Kafka
    kafka_timeout_s: float = 30.0  # a Kafka call (init, commit, checkpoint read) slower than this fails
    watermark_interval_s: float | None = 0.05  # the applied watermark: at most one write per this; None: off


class PositionListener(Protocol):
    """Told positions that need no Kafka commit to be claimed: every transaction since the last
    committed checkpoint carried no change of a mapped table (the watermark publisher)."""

    def settled(self, checkpoint: Checkpoint) -> None: ...

    def close(self) -> None: ...


class _NoLagListener:
    def __call__(self, lag_s: float, checkpoint: Checkpoint | None) -> None:
        return None

    def close(self) -> None:
        return None


class Reader:
    """``run()`` streams until ``stop()``; usable in-process (tests) and from ``replicator run``."""

    def __init__(self, settings: Settings, *, source_factory: SourceFactory,
                 sink_factory: SinkFactory, positions: StartPositions,
                 options: ReaderOptions | None = None, metrics: ReaderMetrics | None = None,
                 stop_event: threading.Event | None = None,
                 preflight: Callable[[], None] | None = None,
                 on_lag: LagListener | None = None, watermark: PositionListener | None = None,
                 gtid_at: Callable[[str, int], str] | None = None,
                 fence_generation: Callable[[], int] | None = None) -> None:
        self._settings = settings
        self._fence_generation = fence_generation  # the fence row's MySQL generation now (fresh starts)
        self._watermark = watermark
        self._gtid_at = gtid_at  # the server's GTID position at a binlog position ("" if it has none)
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
        self._backoff = Backoff(base_s=self.options.backoff_initial_s, cap_s=self.options.backoff_max_s)
        prefix = settings.kafka.topic_prefix
        self._topics = {t.source: table_topic(prefix, t.source) for t in settings.tables}
        self._encoder = row_encoder(settings.reader.decoder)  # ConfigError: 'compiled' without the build
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
            if self._watermark is not None:
                self._watermark.close()

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
                self.metrics.health.set_ready(False, f"retrying: {type(exc).__name__}")
                log.warning("reader_retry", kind=type(exc).__name__, error=str(exc),
                            retry_in_s=round(delay, 2))
                self.metrics.health.beat()  # retrying is alive, not stuck
                self.stop_event.wait(delay)

    # ------------------------------------------------------------------ one producer's life

    def _session(self, backoff: Backoff) -> None:
        sink = self._sink_factory()
        try:
            cp = sink.last_checkpoint()
            start, gtid_position = self._positions.resolve(cp)
            if not gtid_position and start.file and self._gtid_at is not None:
                gtid_position = self._gtid_at(start.file, start.offset or 4)
                if cp is not None and gtid_position:
                    cp = replace(cp, gtid_position=gtid_position)
                    if self._watermark is not None:
                        self._watermark.settled(cp)
            if cp is None:
                generation = self._fence_generation() if self._fence_generation is not None else 0
                # Anchor the first start: a restart before the first commit must not re-read the head.
                if start.file:
                    cp = Checkpoint(start.file, start.offset or 4, None, gtid_position, generation=generation)
                    self._commit(sink, cp, opened=False)
            else:
                generation = cp.generation
                self._note_committed(cp)
            log.info("reader_started", position=start.describe(), generation=generation,
                     checkpoint_topic=checkpoint_topic(self._settings.kafka.topic_prefix))
            while not self.stop_event.is_set():
                outcome = self._stream(sink, start, gtid_position, generation, backoff)
                if outcome is None:
                    return
                start, gtid_position, generation = outcome
        finally:
            sink.close()

    def _stream(self, sink: EventSink, start: StartAt, gtid_position: str, generation: int,
                backoff: Backoff) -> tuple[StartAt, str, int] | None:
        q: queue.Queue[QueueItem] = RowBoundedQueue(self.options.queue_rows)
        pump = Pump(self._source_factory(start), self._topics, GtidState(gtid_position), q,
                    fence_table=self._settings.cutover.fence_table, generation=generation,
                    on_fence_ignored=self.metrics.fence_rows_ignored.inc, encoder=self._encoder)
        pump.start()
        self.metrics.up.set(1)
        self.metrics.health.set_ready(True)
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
            self.metrics.health.set_ready(False, f"source unavailable: {failure}")
            log.warning("source_retry", error=str(failure), retry_in_s=round(delay, 2),
                        resume_at=self.committed.describe() if self.committed else start.describe())
            self.stop_event.wait(delay)
            if self.committed is None:
                return start, gtid_position, generation
            cp = self.committed
            return StartAt(file=cp.file, offset=cp.offset), cp.gtid_position, cp.generation
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
            self.metrics.health.beat()  # at least every 0.2 s while idle: a stuck loop fails /healthz
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
            if isinstance(item, CompleteTx):
                if item.records:
                    if not opened:
                        sink.begin()
                        opened, batch_t0 = True, time.monotonic()
                    batch_bytes += sink.send_all(item.records)
                    batch_rows += item.rows
                    counts.update(item.counts)
                pending = item.checkpoint
                txs += 1
                if not opened and self._watermark is not None:
                    self._watermark.settled(pending)  # no mapped change since the last commit
                now = time.monotonic()
                if opened:
                    if batch_rows >= opts.max_batch_rows or now - batch_t0 >= opts.max_batch_s:
                        commit()
                elif now - last_commit >= opts.idle_checkpoint_s:
                    commit()  # only unmapped tables move: keep the checkpoint (and lag) current anyway
            elif isinstance(item, SourceFailure):
                if isinstance(item.error, FatalDataError | TransientError):
                    commit()  # complete transactions only: safe to keep
                else:
                    log.error("reader_unexpected_error", kind=type(item.error).__name__,
                              error=str(item.error))
                return item.error
            elif isinstance(item, CaughtUp):
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
        log.info("checkpoint_committed", file=cp.file, offset=cp.offset, gtid=cp.gtid, rows=rows,
                 transactions=txs)

    def _note_committed(self, cp: Checkpoint) -> None:
        self.committed = cp
        self.metrics.checkpoint(cp.file, cp.offset, time.time(), cp.generation)

"""The reader's half of the applied watermark: the ``watermark.reader`` marker.

Its format and what it claims are in :mod:`replicator.control.watermark`. Two inputs:

- :meth:`WatermarkPublisher.committed`, from the sink
  (:class:`~replicator.reader.sink.KafkaTransactionalSink`): the committed checkpoint together
  with the last committed data offset of every table-topic partition, after each Kafka commit
  and once when a new sink has read both back at start;
- :meth:`WatermarkPublisher.settled`, from the reader loop: a position past the last commit
  reached only through transactions that carry no mapped change (unmapped tables), so the
  committed offsets already cover it and no Kafka commit is needed to publish it.

The marker is written by a thread of its own, at most once per ``interval_s`` and always with
the latest state (a trailing write follows the last change), so neither the store's latency nor
its outages ever hold up the reader. Each component only moves forward within a process (the
component-wise maximum of true claims is true). A store that is down is counted
(``on_failure``) and logged, and retried every ``retry_s``, never fatal: a stale marker only
makes waiters wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

import structlog

from replicator.control import ControlStore, names, open_control_store
from replicator.control.watermark import TopicPartition, offsets_to_doc
from replicator.errors import ReplicatorError
from replicator.events import binlog_version
from replicator.reader.checkpoint import Checkpoint
from replicator.settings import Settings

__all__ = ["WatermarkPublisher", "checkpoint_version"]

log = structlog.get_logger("replicator.reader")


def checkpoint_version(cp: Checkpoint) -> int:
    """The binlog version of a checkpoint's position (-1 when it has none, e.g. a bad file name)."""
    try:
        return binlog_version(cp.file, cp.offset)
    except ValueError:
        return -1


class WatermarkPublisher:
    """Implements :class:`~replicator.reader.runner.PositionListener`; see the module docstring."""

    def __init__(self, settings: Settings, *, interval_s: float = 0.05, retry_s: float = 1.0,
                 store_factory: Callable[[Settings], ControlStore] = open_control_store,
                 on_failure: Callable[[], None] | None = None, close_timeout_s: float = 5.0) -> None:
        self._settings = settings
        self._interval_s = interval_s
        self._retry_s = retry_s
        self._factory = store_factory
        self._on_failure = on_failure
        self._close_timeout_s = close_timeout_s
        self._cond = threading.Condition()
        self._offsets: dict[TopicPartition, int] | None = None
        self._cp: Checkpoint | None = None
        self._version = -1
        self._dirty = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._store: ControlStore | None = None
        self.writes = 0
        self.failures = 0

    # ------------------------------------------------------------------ inputs (reader thread)

    def committed(self, cp: Checkpoint | None, offsets: Mapping[TopicPartition, int] | None) -> None:
        """A committed state; ``offsets`` None: the sink lost track (publish nothing until a full one)."""
        with self._cond:
            if offsets is None:
                self._offsets = None
                return
            merged = dict(self._offsets or {})
            for tp, offset in offsets.items():
                merged[tp] = max(offset, merged.get(tp, offset))
            self._offsets = merged
            self._advance(cp)

    def settled(self, checkpoint: Checkpoint) -> None:
        """A position reached through transactions without mapped changes since the last commit."""
        with self._cond:
            if self._offsets is not None:
                self._advance(checkpoint)

    def _advance(self, cp: Checkpoint | None) -> None:
        if cp is not None:
            version = checkpoint_version(cp)
            if version >= self._version:
                self._cp, self._version = cp, version
        if self._cp is None or self._closed:
            return
        self._dirty = True
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="reader-watermark", daemon=True)
            self._thread.start()
        self._cond.notify()

    # ------------------------------------------------------------------ the writing thread

    def _doc(self) -> dict[str, object] | None:
        """The marker of the current state (under the lock); None while it is not publishable."""
        cp, offsets = self._cp, self._offsets
        if cp is None or offsets is None:
            return None
        return {"ts": time.time(), "gtid_position": cp.gtid_position, "version": self._version,
                "position": f"{cp.file}:{cp.offset}", "offsets": offsets_to_doc(offsets)}

    def _run(self) -> None:
        next_at = 0.0
        try:
            while True:
                with self._cond:
                    while not self._closed and (not self._dirty or time.monotonic() < next_at):
                        self._cond.wait(None if not self._dirty else max(0.0, next_at - time.monotonic()))
                    doc = self._doc() if self._dirty else None
                    self._dirty = False
                    closing = self._closed
                if doc is not None:
                    ok = self._write(doc)
                    next_at = time.monotonic() + (self._interval_s if ok else self._retry_s)
                    if not ok:
                        with self._cond:
                            self._dirty = True  # the latest state goes out on the next attempt
                if closing:
                    return
        except BaseException as exc:  # a bug: stop publishing (waiters wait), say so loudly
            self._failed()
            log.error("reader_watermark_stopped", error=str(exc), kind=type(exc).__name__)
        finally:
            self._drop_store()

    def _write(self, doc: dict[str, object]) -> bool:
        try:
            if self._store is None:
                store = self._factory(self._settings)
                store.start()
                self._store = store
            self._store.put_marker(names.READER_WATERMARK, doc)
            self.writes += 1
            return True
        except ReplicatorError as exc:
            self._failed()
            log.warning("reader_watermark_failed", error=str(exc), kind=type(exc).__name__)
            self._drop_store()
            return False

    def _failed(self) -> None:
        self.failures += 1
        if self._on_failure is not None:
            self._on_failure()

    def _drop_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except ReplicatorError as exc:
                log.debug("reader_watermark_store_close_failed", error=str(exc))

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Write the last state (bounded by ``close_timeout_s``) and stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(self._close_timeout_s)
            if thread.is_alive():
                log.warning("reader_watermark_close_timed_out", timeout_s=self._close_timeout_s)

"""The reader's heartbeat in the control store: how far behind MySQL it is, for the 4 -> 5 gate.

The reader calls the publisher whenever it learns its lag (on every checkpoint, and on the
server's heartbeat when there is nothing newer: lag 0). Writes are throttled to one per
``interval_s``; a control store that is down is logged and counted (``on_failure``:
``replicator_reader_heartbeat_failures_total`` of :class:`~replicator.reader.metrics.ReaderMetrics`),
never fatal, because losing the heartbeat only makes the gate refuse, which is the safe direction.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from replicator.control import ControlStore, names, open_control_store
from replicator.errors import TransientError
from replicator.reader.checkpoint import Checkpoint
from replicator.settings import Settings

log = structlog.get_logger("replicator.reader")


class HeartbeatPublisher:
    def __init__(self, settings: Settings, *, interval_s: float = 2.0,
                 store_factory: Callable[[Settings], ControlStore] = open_control_store,
                 clock: Callable[[], float] = time.monotonic,
                 on_failure: Callable[[], None] | None = None) -> None:
        self._settings = settings
        self._on_failure = on_failure
        self._interval_s = interval_s
        self._factory = store_factory
        self._clock = clock
        self._store: ControlStore | None = None
        self._last = float("-inf")

    def __call__(self, lag_s: float, checkpoint: Checkpoint | None) -> None:
        now = self._clock()
        if now - self._last < self._interval_s:
            return
        self._last = now
        doc = {"ts": time.time(), "lag_s": round(lag_s, 3),
               "position": checkpoint.describe() if checkpoint else None}
        try:
            if self._store is None:
                store = self._factory(self._settings)
                store.start()
                self._store = store
            self._store.put_marker(names.READER_HEARTBEAT, doc)
        except TransientError as exc:
            if self._on_failure is not None:
                self._on_failure()
            log.warning("reader_heartbeat_failed", error=str(exc))
            self.close()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

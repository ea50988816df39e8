"""Deliver phase changes to a callback within a second of the write.

Redis wakes the watcher through its pub/sub channel; DynamoDB is polled (0.2 s). An outage of
the store (a Redis restart) is logged and retried; on reconnection the watcher re-reads the
state, so a change made while it was disconnected is still delivered.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from replicator.control import ControlStore, ControlStoreUnavailable, PhaseState
from replicator.phase.metrics import PhaseMetrics

log = structlog.get_logger(__name__)



class PhaseWatcher:
    """Calls ``on_change(state)`` from a background thread whenever the stored epoch changes.

    Give it a store of its own: on Redis it holds that store's pub/sub connection.
    """

    def __init__(
        self, store: ControlStore, on_change: Callable[[PhaseState], None], *,
        wait_s: float = 1.0, retry_s: float = 0.5, metrics: PhaseMetrics | None = None,
    ) -> None:
        self._store = store
        self.metrics = metrics or PhaseMetrics()
        self._on_change = on_change
        self._wait_s = wait_s
        self._retry_s = retry_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: PhaseState | None = None

    @property
    def current(self) -> PhaseState | None:
        """The last state seen (None before start)."""
        return self._current

    def start(self) -> None:
        if self._thread is not None:
            return
        self._current = self._store.get_phase()
        self._thread = threading.Thread(target=self._run, name="phase-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._wait_s + 5)
            self._thread = None

    def __enter__(self) -> PhaseWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        down = False
        while not self._stop.is_set():
            known = self._current.epoch if self._current else 0
            try:
                state = self._store.wait_for_change(known, self._wait_s)
            except ControlStoreUnavailable as exc:
                self.metrics.watch_errors.labels(kind="store_unavailable").inc()
                if not down:
                    log.warning("phase_watch_store_unavailable", error=str(exc))
                down = True
                self._stop.wait(self._retry_s)
                continue
            if down:
                log.info("phase_watch_store_back")
                down = False
            if state is None:
                continue
            self._current = state
            try:
                self._on_change(state)
            except Exception as exc:  # a failing callback must not end the watch
                self.metrics.watch_errors.labels(kind="callback").inc()
                log.exception("phase_watch_callback_failed", phase=state.phase, epoch=state.epoch,
                              error=str(exc))

"""What the client measures: Prometheus metrics (per process) and the gates' counters (shared).

:class:`ClientMetrics` lives on an injected registry, like every role's metrics.
:class:`GateCounters` buffers the control-store counters the phase gates read
(``validation.*`` for 3 -> 4, ``dynamodb_read.*`` for 4 -> 5) and flushes them once a second
from a background thread, so an application read never waits for the control store; a store
that is down keeps the counts (bounded) for the next flush, and is counted and logged, never
raised to the application.
"""

from __future__ import annotations

import threading
import time
from collections import Counter as Tally

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from replicator.control import ControlStore
from replicator.errors import ReplicatorError

log = structlog.get_logger("replicator.client")

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ClientMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.read_seconds = Histogram(
            "replicator_client_read_seconds", "Latency of one read from one store",
            ["store", "op"], buckets=_LATENCY_BUCKETS, registry=r)
        self.read_errors = Counter(
            "replicator_client_read_errors_total", "Reads that failed or overran their budget",
            ["store", "reason"], registry=r)
        self.writes = Counter(
            "replicator_client_writes_total", "Application writes by the store that took them",
            ["store", "op", "outcome"], registry=r)
        self.validations = Counter(
            "replicator_client_validations_total",
            "Phase-3 comparisons: passed, failed, or unverified (the pipeline did not catch up in time)",
            ["outcome"], registry=r)
        self.differences = Counter(
            "replicator_client_validation_differences_total", "Fields that differed, by class",
            ["table", "kind"], registry=r)
        self.fallbacks = Counter(
            "replicator_client_fallbacks_total", "Reads served from MySQL instead of DynamoDB",
            ["reason"], registry=r)
        self.phase = Gauge("replicator_client_phase", "The phase snapshot in force", registry=r)
        self.control_errors = Counter(
            "replicator_client_control_store_errors_total",
            "Control-store failures (phase watch, counters); the client keeps its last phase", registry=r)
        self.oversized_transactions = Counter(
            "replicator_client_oversized_transactions_total",
            "Transactions over DynamoDB's 100-item limit in phases 1-4 (they would fail in phase 5)",
            registry=r)


class GateCounters:
    """Buffered ``incr`` on the control store, flushed every ``interval_s`` (and on close)."""

    MAX_PENDING_BUCKETS = 1440  # a day of minutes kept through a control-store outage

    def __init__(self, store: ControlStore, metrics: ClientMetrics, *, interval_s: float = 1.0) -> None:
        self._store = store
        self._metrics = metrics
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._pending: dict[int, Tally[str]] = {}  # minute -> counts, so a late flush lands in its bucket
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._down = False

    def incr(self, name: str, amount: int = 1) -> None:
        minute = int(time.time() // 60)
        with self._lock:
            self._pending.setdefault(minute, Tally())[name] += amount

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="client-counters", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval_s + 5)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        failed: dict[int, Tally[str]] = {}
        for minute in sorted(pending):
            try:
                self._store.incr_many(dict(pending[minute]), at=minute * 60.0 + 30)
            except ReplicatorError as exc:
                failed[minute] = pending[minute]
                self._metrics.control_errors.inc()
                if not self._down:
                    log.warning("gate_counters_not_written", error=str(exc), kept_minutes=len(failed))
                self._down = True
        if not failed and self._down:
            log.info("gate_counters_written_again")
            self._down = False
        if failed:
            with self._lock:
                for minute, tally in failed.items():
                    self._pending.setdefault(minute, Tally()).update(tally)
                for minute in sorted(self._pending)[:-self.MAX_PENDING_BUCKETS]:
                    del self._pending[minute]

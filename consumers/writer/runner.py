"""The writer loop: consume a batch, map and coalesce it, apply it, then commit its offsets.

Order of acknowledgements for one batch (DESIGN §4 invariant 4):
  1. every coalesced write acknowledged by DynamoDB (applied, or already there: a replay),
  2. every dead letter acknowledged by the broker,
  3. then, and only then, the consumer offsets of the batch are committed.
A crash anywhere before 3 re-delivers the batch, which the version conditions make harmless.

Phases: the writer applies only while ``get_phase().dual_write_enabled`` (phases 2-4). In
any other phase it pauses its partitions and keeps polling (group membership kept, nothing
consumed) until the phase changes. It reports ``dual_write.applied`` / ``dual_write.failed``
per batch and a ``writer.heartbeat`` marker to the control store for the phase gates.

Applied watermark: after each commit the batch's offsets go to the member's
``watermark.writer.<member>`` marker (:mod:`consumers.writer.watermark`), together with the
committed offsets of partitions newly assigned to it; the poll is shortened so that a pending
marker write is never held back longer than ``watermark_interval_s``.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from consumers.writer.applier import WriteResult
from consumers.writer.batch import BatchPlan, DeadLetter, MapperCache, RawMessage, plan_batch
from consumers.writer.cascade.order import CascadeOrder
from consumers.writer.kafka import AssignmentAware, process_member_id
from consumers.writer.metrics import WriterMetrics
from consumers.writer.ports import Applier, DeadLetterSink, EventConsumer
from consumers.writer.watermark import OffsetsPublisher
from replicator.control import ControlStore, names
from replicator.control.follow import PhaseFollower
from replicator.errors import BrokerUnavailable, ControlStoreUnavailable
from replicator.metrics import Health
from replicator.settings import Settings

MAX_REMEMBERED_LETTERS = 20  # dead letters kept for the gates to name (the topic keeps them all)
log = structlog.get_logger("consumers.writer")


@dataclass(frozen=True)
class WriterOptions:
    max_batch: int = 2000
    poll_timeout_s: float = 0.2
    phase_refresh_s: float = 1.0
    heartbeat_s: float = 5.0
    watermark_interval_s: float = 0.05  # the applied watermark: at most one marker write per this
    assignment_retry_s: float = 1.0  # committed offsets of new partitions: retry after a failure


@dataclass
class BatchStats:
    events: int = 0
    applied: int = 0
    replayed: int = 0
    coalesced: int = 0
    failed: int = 0


class Writer:
    """Kafka -> DynamoDB; adapters injected (see :func:`consumers.writer.service.run_writer`)."""

    def __init__(self, settings: Settings, consumer: EventConsumer, applier: Applier,
                 dead_letters: DeadLetterSink, control: ControlStore, metrics: WriterMetrics,
                 options: WriterOptions | None = None, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.consumer = consumer
        self.applier = applier
        self.dead_letters = dead_letters
        self.control = control
        self.metrics = metrics
        self.options = options or WriterOptions()
        self.clock = clock
        self.mappers = MapperCache(settings)
        self.stop_event = threading.Event()
        self.health: Health | None = None  # /healthz and /readyz of the metrics port
        self.totals = BatchStats()
        self.follower = PhaseFollower(control, consumer, metrics.paused, role="writer",
                                      refresh_s=self.options.phase_refresh_s,
                                      pause_reason="DynamoDB is not a pipeline write target in this phase")
        self._heartbeat_at = 0.0
        self._rate_mark = (0.0, 0)  # (time, events) at the last heartbeat: the writer's throughput
        self._events_per_s = 0.0
        self._aware = consumer if isinstance(consumer, AssignmentAware) else None
        self.watermark = OffsetsPublisher(
            control, self._aware.member_id if self._aware is not None else process_member_id(),
            settings.writer_group, interval_s=self.options.watermark_interval_s)
        self._assigned: list[tuple[str, int]] = []  # whose committed offsets are still to be read
        self._assigned_retry_at = 0.0
        #: Foreign-key cascades (consumers.writer.cascade.order.CascadeOrder), set up by the service.
        self.cascades: CascadeOrder | None = None

    # ----------------------------------------------------------------- loop

    def run(self) -> None:
        log.info("writer_started", group=self.settings.writer_group, tables=len(self.settings.tables),
                 mode=self.applier.mode, concurrency=self.applier.concurrency)
        try:
            while not self.stop_event.is_set():
                self.step()
        finally:
            self.watermark.flush()
        log.info("writer_stopped", events=self.totals.events, applied=self.totals.applied,
                 replayed=self.totals.replayed, failed=self.totals.failed)

    def step(self) -> BatchStats:
        """One iteration: heartbeat, phase check, then one batch (or an idle poll while paused)."""
        now = self.clock()
        if self.health is not None:
            self.health.beat()
        self._heartbeat(now)
        self._watermark_assigned()
        self.watermark.publish_due()
        if not self._applying(now):
            self.consumer.poll_batch(self.options.max_batch, self._poll_timeout())
            return BatchStats()
        messages = self.consumer.poll_batch(self.options.max_batch, self._poll_timeout())
        if self.cascades is not None:  # foreign-key cascades: applied in version order around them
            before = self.totals.events
            self.cascades.step(messages, self.apply_batch)
            return BatchStats(events=self.totals.events - before)
        if not messages:
            return BatchStats()
        return self.apply_batch(messages)

    def commit_applied(self, offsets: dict[tuple[str, int], int]) -> None:
        """Commit offsets applied outside :meth:`apply_batch` (a cascade completed), and publish them."""
        self.consumer.commit(offsets)
        self.watermark.record(offsets)
        self.watermark.publish_due()

    def _poll_timeout(self) -> float:
        due = self.watermark.wait_s()
        return self.options.poll_timeout_s if due is None else min(self.options.poll_timeout_s, due)

    def _watermark_assigned(self) -> None:
        """Publish the group's committed offsets of partitions assigned since the last step."""
        if self._aware is None:
            return
        self._assigned += self._aware.take_assigned()
        if not self._assigned or time.monotonic() < self._assigned_retry_at:
            return
        try:
            committed = self._aware.committed(sorted(set(self._assigned)))
        except BrokerUnavailable as exc:
            self._assigned_retry_at = time.monotonic() + self.options.assignment_retry_s
            log.warning("assigned_offsets_unread", error=str(exc), partitions=len(self._assigned))
            return
        self._assigned = []
        self.watermark.record(committed)

    def _applying(self, now: float) -> bool:
        return self.follower.running(now, self.health)

    def _heartbeat(self, now: float) -> None:
        if now - self._heartbeat_at < self.options.heartbeat_s:
            return
        self._heartbeat_at = now
        # Events/s over the last heartbeat interval, smoothed: the 4 -> 5 lag gate estimates from it
        # how long a backlog takes to drain under the switch's freeze (replicator.phase.gates).
        at, events = self._rate_mark
        if at and now > at:
            recent = (self.totals.events - events) / (now - at)
            self._events_per_s = recent if not self._events_per_s else 0.5 * self._events_per_s + 0.5 * recent
        self._rate_mark = (now, self.totals.events)
        try:
            self.control.put_marker(names.WRITER_HEARTBEAT, {"ts": now, "group": self.settings.writer_group,
                                                             "events_per_s": round(self._events_per_s, 1)})
        except ControlStoreUnavailable as exc:
            log.warning("heartbeat_not_written", error=str(exc))

    # ----------------------------------------------------------------- one batch

    def apply_batch(self, messages: list[RawMessage]) -> BatchStats:
        started = time.monotonic()
        now = self.clock()
        plan = plan_batch(messages, self.mappers, now, self.settings.dynamodb.tombstone_ttl_s)
        self.metrics.events.inc(plan.events)
        self.metrics.coalesced.inc(plan.coalesced)
        results = self.applier.apply(plan.writes)
        letters = list(plan.dead_letters)
        stats = BatchStats(events=plan.events, coalesced=plan.coalesced)
        per_table: Counter[str] = Counter()
        for r in results:
            table = r.write.table
            if r.outcome == "applied":
                stats.applied += 1
                per_table[table] += 1
                self.metrics.applied.labels(table).inc()
            elif r.outcome == "replayed":
                stats.replayed += 1
                self.metrics.replayed.labels(table).inc()
            else:
                letters.append(self._rejected(plan, r))
        for letter in letters:
            stats.failed += 1
            self.metrics.failed.labels(letter.table or "?").inc()
            self.metrics.dead_lettered.labels(letter.reason).inc()
            log.warning("dynamodb_write_failed", marker="DualWrite",
                        outcome="failed", table=letter.table, key=letter.key,
                        version=letter.version, error=letter.error_type, reason=letter.reason,
                        message=letter.error)
        if letters:
            self.dead_letters.send(letters)
            self._remember(letters, now)
        offsets = plan.offsets if self.cascades is None else self.cascades.cap(plan.offsets)
        self.consumer.commit(offsets)
        # Applied, whether or not the commit went through (a partition revoked meanwhile): true either way.
        self._watermark_assigned()  # a restarted member's first marker carries all of its partitions
        self.watermark.record(offsets)
        self.watermark.publish_due()
        self._report(now, stats)
        seconds = time.monotonic() - started
        self.metrics.batch_latency.observe(seconds)
        if plan.oldest_ts_ms is not None:  # end to end: MySQL commit -> acknowledged by DynamoDB
            lag = max(0.0, self.clock() - plan.oldest_ts_ms / 1000)
            self.metrics.replication_lag.set(lag)
            self.metrics.replication_latency.observe(lag)
        log.debug("dynamodb_write_applied", marker="DualWrite",
                  outcome="applied", events=stats.events, applied=stats.applied,
                  replayed=stats.replayed, coalesced=stats.coalesced, failed=stats.failed,
                  tables=dict(per_table), seconds=round(seconds, 4))
        for field in ("events", "applied", "replayed", "coalesced", "failed"):
            setattr(self.totals, field, getattr(self.totals, field) + getattr(stats, field))
        return stats

    @staticmethod
    def _rejected(plan: BatchPlan, r: WriteResult) -> DeadLetter:
        w = r.write
        key = ",".join(f"{k}={next(iter(v.values()))!r}" for k, v in sorted(w.key.items()))
        if w.entry is not None:
            key += f" {w.entry.attribute}[{w.entry.name}]"
        # DynamoDB's own words for an item past 400 KB (an embedded parent with too many children)
        reason = "item-too-large" if "item size" in r.error.lower() else "dynamodb-rejected"
        return DeadLetter(plan.message_of(w), "TargetRejected", r.error, w.table, key, reason, w.version)

    def _remember(self, letters: list[DeadLetter], now: float) -> None:
        """The latest dead letters in the control store, for the dual-write gate to name them."""
        recent = [{"table": d.table, "key": d.key, "reason": d.reason, "error": d.error[:200], "at": now}
                  for d in letters[-MAX_REMEMBERED_LETTERS:]]
        try:
            doc = self.control.get_marker(names.WRITER_DEADLETTERS) or {}
            kept = list(doc.get("recent") or [])[-(MAX_REMEMBERED_LETTERS - len(recent)):] \
                if len(recent) < MAX_REMEMBERED_LETTERS else []
            self.control.put_marker(names.WRITER_DEADLETTERS, {"recent": kept + recent})
        except ControlStoreUnavailable as exc:
            log.warning("dead_letters_not_remembered", error=str(exc), count=len(letters))

    def _report(self, now: float, stats: BatchStats) -> None:
        ok = stats.applied + stats.replayed + stats.coalesced
        if not ok and not stats.failed:
            return
        try:
            self.control.incr_many({names.DUAL_WRITE_APPLIED: ok, names.DUAL_WRITE_FAILED: stats.failed},
                                   at=now)
        except ControlStoreUnavailable as exc:
            log.warning("gate_counters_not_written", error=str(exc), applied=ok, failed=stats.failed)

"""The stream validator: every changed key (a sample of them) compared across both stores.

The validator reads the table topics in its own consumer group (``<topic_prefix>.validator``),
so it never takes a message from the writer, and N replicas share the partitions as one group.
For each batch:

1. decode the events; the events of one key are coalesced to the newest (a later state of a
   row is checked once); a share ``validation.sample_ratio`` of the keys is kept, chosen by a
   hash of key and version, so every replica and every restart samples the same keys;
2. resolve every kept key with the lag-aware :class:`~validators.checks.LagAwareChecker`
   (applied? compare, settle): replication lag is never a failure;
3. log each failure with the guide's text ``Data validation failed`` and the field diff (the
   columns and their class of difference at warning level; the values at debug level, since
   rows may hold personal data), count passed/failed into the control store's
   ``validation.passed`` / ``validation.failed`` (the phase 3 -> 4 gate's error rate, the
   counters the client's phase-3 reads use), and into the Prometheus metrics;
4. commit the batch's offsets: a restarted validator resumes after the last judged batch.

Like the writer, it compares only while the phase replicates to DynamoDB (phases 2-4:
``dual_write_enabled``); in other phases it pauses its partitions and keeps its group.
A failing read of either store is logged, counted, and the batch is tried again after a
pause: nothing is committed that was not judged.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from consumers.writer.batch import RawMessage
from consumers.writer.ports import EventConsumer
from replicator.control import ControlStore, names
from replicator.control.follow import PhaseFollower
from replicator.diff import diff_row
from replicator.errors import (
    BadEventError,
    ControlStoreUnavailable,
    FatalDataError,
    StatementRejected,
    TransientError,
)
from replicator.events import ChangeEvent
from replicator.metrics import Health
from replicator.settings import Settings
from validators.checks import Check, KeyStores, LagAwareChecker, Verdict
from validators.metrics import ValidatorMetrics

log = structlog.get_logger("validators.stream")


@dataclass(frozen=True)
class ValidatorOptions:
    max_batch: int = 500
    poll_timeout_s: float = 0.5
    phase_refresh_s: float = 1.0
    heartbeat_s: float = 5.0
    retry_s: float = 1.0  # pause before a batch whose reads failed is tried again


@dataclass
class Totals:
    events: int = 0
    keys: int = 0
    passed: int = 0
    failed: int = 0
    unverified: int = 0
    skipped: int = 0
    failures: list[Verdict] = field(default_factory=list)  # the first ones, for a report

    def to_doc(self) -> dict[str, object]:
        return {"events": self.events, "keys": self.keys, "passed": self.passed, "failed": self.failed,
                "unverified": self.unverified, "skipped": self.skipped}


def sampled(key: bytes, version: int, ratio: float) -> bool:
    """Whether a change is compared: a stable hash of key and version against ``ratio``."""
    if ratio >= 1.0:
        return True
    if ratio <= 0.0:
        return False
    return zlib.crc32(key + version.to_bytes(8, "big")) < ratio * 2**32


class StreamValidator:
    """Kafka -> compare both stores -> gate counters; adapters injected (see :mod:`.service`)."""

    def __init__(self, settings: Settings, consumer: EventConsumer, stores: KeyStores,
                 checker: LagAwareChecker, control: ControlStore, metrics: ValidatorMetrics,
                 options: ValidatorOptions | None = None, *, member: str = "validator",
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 on_reset: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.consumer = consumer
        self.stores = stores
        self.checker = checker
        self.control = control
        self.metrics = metrics
        self.options = options or ValidatorOptions()
        self.member = member
        self.clock = clock
        self.sleep = sleep
        self.on_reset = on_reset  # after a failed read: reconnect, forget cached shapes
        self.health: Health | None = None  # /healthz and /readyz of the metrics port
        self.stop_event = checker.stop
        self.totals = Totals()
        self.last_message_at = clock()  # when the last batch was judged (for --once)
        self._mapped = {t.source for t in settings.tables}
        self.follower = PhaseFollower(control, consumer, metrics.paused, role="validator",
                                      refresh_s=self.options.phase_refresh_s,
                                      pause_reason="the phase does not replicate to DynamoDB")
        self._heartbeat_at = 0.0

    # ----------------------------------------------------------------- loop

    def run(self, until: Callable[[StreamValidator], bool] | None = None) -> Totals:
        log.info("validator_started", group=self.settings.validator_group, member=self.member,
                 sample_ratio=self.settings.validation.sample_ratio,
                 recheck_wait_s=self.settings.validation.recheck_wait_s)
        while not self.stop_event.is_set() and not (until is not None and until(self)):
            self.step()
        self._heartbeat(self.clock(), force=True)
        log.info("validator_stopped", **self.totals.to_doc())
        return self.totals

    def step(self) -> list[Verdict]:
        now = self.clock()
        self.metrics.heartbeat.set(now)
        if self.health is not None:
            self.health.beat()
        self._heartbeat(now)
        if not self._comparing(now):
            self.consumer.poll_batch(self.options.max_batch, self.options.poll_timeout_s)
            return []
        messages = self.consumer.poll_batch(self.options.max_batch, self.options.poll_timeout_s)
        if not messages:
            return []
        verdicts = self.validate_batch(messages)
        self.last_message_at = self.clock()  # idle counts from the end of the last batch's work
        return verdicts

    def _comparing(self, now: float) -> bool:
        return self.follower.running(now, self.health)

    def _heartbeat(self, now: float, *, force: bool = False) -> None:
        if not force and now - self._heartbeat_at < self.options.heartbeat_s:
            return
        self._heartbeat_at = now
        try:
            self.control.put_marker(names.validator_marker(self.member), {
                "ts": now, "member": self.member, "group": self.settings.validator_group,
                "paused": self.follower.paused, **self.totals.to_doc()})
        except ControlStoreUnavailable as exc:
            log.warning("heartbeat_not_written", error=str(exc))

    # ----------------------------------------------------------------- one batch

    def checks_of(self, messages: list[RawMessage], now: float) -> list[Check]:
        """Decode, coalesce per key and sample: the keys of this batch to compare."""
        latest: dict[tuple[str, bytes], tuple[ChangeEvent, RawMessage]] = {}
        for msg in messages:
            try:
                if msg.value is None:
                    raise BadEventError("message without a value", reason="empty-message")
                event = ChangeEvent.from_json(msg.value)
            except BadEventError as exc:
                self._skip("unreadable")
                log.warning("event_unreadable", topic=msg.topic, partition=msg.partition, offset=msg.offset,
                            error=str(exc))
                continue
            if event.source not in self._mapped:
                self._skip("unmapped")
                continue
            ident = (event.source, event.key_bytes())
            prior = latest.get(ident)
            if prior is not None:
                self._skip("superseded")
                if prior[0].version > event.version:
                    continue
            latest[ident] = (event, msg)
        checks = []
        ratio = self.settings.validation.sample_ratio
        for (source, key), (event, msg) in latest.items():
            if not sampled(key, event.version, ratio):
                self._skip("unsampled")
                continue
            checks.append(Check(source, self.stores.key_text(source, event.row), event.row, event.version,
                                msg.topic, msg.partition, msg.offset, now))
        return checks

    def _skip(self, reason: str) -> None:
        self.metrics.skipped.labels(reason).inc()
        self.totals.skipped += 1

    def validate_batch(self, messages: list[RawMessage]) -> list[Verdict]:
        self.metrics.events.inc(len(messages))
        offsets: dict[tuple[str, int], int] = {}
        for m in messages:
            offsets[(m.topic, m.partition)] = max(offsets.get((m.topic, m.partition), 0), m.offset + 1)
        while True:
            try:
                checks = self.checks_of(messages, self.clock())
                verdicts = self.checker.resolve(checks)
                break
            except (TransientError, StatementRejected) as exc:  # rejected: the table changed (DDL)
                self.metrics.errors.labels(type(exc).__name__).inc()
                log.warning("validation_reads_failed", error=str(exc), retry_in_s=self.options.retry_s)
                if self.on_reset is not None:
                    self.on_reset()
                if self.stop_event.wait(self.options.retry_s):
                    return []
            except FatalDataError as exc:
                self.metrics.errors.labels(type(exc).__name__).inc()
                raise
        if len(verdicts) < len(checks):  # stopped while waiting: judge the batch again after a restart
            return verdicts
        self.totals.events += len(messages)
        self._record(verdicts)
        self.consumer.commit(offsets)
        return verdicts

    def _record(self, verdicts: list[Verdict]) -> None:
        passed = failed = 0
        for v in verdicts:
            table = v.check.source
            self.metrics.keys.labels(table, v.outcome).inc()
            self.metrics.check_latency.observe(v.waited_s)
            self.totals.keys += 1
            if v.outcome == "passed":
                passed += 1
            elif v.outcome == "failed":
                failed += 1
                self._report(v)
            else:
                self.totals.unverified += 1
                self.metrics.unverified.labels(table, v.reason).inc()
                log.info("validation_unverified", table=table, key=v.check.key, reason=v.reason,
                         version=v.check.version, waited_s=round(v.waited_s, 3))
        self.totals.passed += passed
        self.totals.failed += failed
        self.metrics.rechecks.inc(self.checker.rechecks)
        self.checker.rechecks = 0
        if not passed and not failed:
            return
        try:
            self.control.incr_many({names.VALIDATION_PASSED: passed, names.VALIDATION_FAILED: failed},
                                   at=self.clock())
        except ControlStoreUnavailable as exc:
            log.warning("gate_counters_not_written", error=str(exc), passed=passed, failed=failed)

    def _report(self, v: Verdict) -> None:
        m = v.mismatch
        assert m is not None  # a failed verdict carries its mismatch
        for kind in m.classes():
            self.metrics.differences.labels(v.check.source, kind).inc()
        if len(self.totals.failures) < 1000:
            self.totals.failures.append(v)
        log.warning("data_validation_failed", marker="Data validation failed", table=m.table, key=m.key,
                    kind=m.kind, fields=m.fields, version=v.check.version,
                    source_offset=f"{v.check.topic}:{v.check.partition}:{v.check.offset}")
        if v.mysql is not None and v.dynamodb is not None:
            log.debug("data_validation_failed_values", table=m.table, key=m.key,
                      diff={c: {"mysql": repr(a)[:80], "dynamodb": repr(b)[:80]}
                            for c, (a, b) in diff_row(v.mysql, v.dynamodb).items()})

"""Gate probes: read the control store, DynamoDB and Kafka, then judge with :mod:`gates`.

The external systems sit behind two small Protocols (``TableProbe``, ``OffsetProbe``) so the
checker can be driven by fakes in unit tests; the real adapters are :class:`BotoTableProbe` and
:class:`KafkaOffsetProbe`. No I/O happens in constructors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from replicator.adapters import kafka
from replicator.adapters.dynamodb import dynamo_errors, dynamodb_client
from replicator.control import ControlStore, PhaseState, names
from replicator.errors import BrokerUnavailable, ProbeError, TableNotFoundError, TransientError
from replicator.phase import gates
from replicator.phase.clock import Clock
from replicator.settings import DynamoDBSettings, KafkaSettings, Settings
from replicator.topics import table_topic

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = structlog.get_logger(__name__)


class TableProbe(Protocol):
    def missing_tables(self, tables: Sequence[str]) -> list[str]:
        """The tables of ``tables`` that do not exist (or are not ACTIVE)."""
        ...


class OffsetProbe(Protocol):
    def topic_lags(self, group: str, topics: Sequence[str]) -> dict[str, int]:
        """Per topic: 0 when the group has committed every data message, else the offsets it is
        behind (from its first unconsumed data message to the high watermark)."""
        ...


# --------------------------------------------------------------------------- real adapters

class BotoTableProbe:
    def __init__(self, cfg: DynamoDBSettings) -> None:
        self._cfg = cfg
        self._client: DynamoDBClient | None = None

    def missing_tables(self, tables: Sequence[str]) -> list[str]:
        if self._client is None:
            self._client = dynamodb_client(self._cfg, attempts=2)
        missing = []
        for name in tables:
            try:
                with dynamo_errors("describing the table", name):
                    status = self._client.describe_table(TableName=name)["Table"].get("TableStatus")
            except TableNotFoundError:
                missing.append(name)
                continue
            except TransientError as exc:
                raise ProbeError(f"DynamoDB unreachable: {exc}") from exc
            if status not in ("ACTIVE", "UPDATING"):
                missing.append(f"{name} ({status})")
        return missing


class KafkaOffsetProbe:
    """Committed offsets of a group against the high watermarks.

    A transactional producer (the binlog reader) leaves a commit marker after its last message,
    so a consumer that has processed everything commits one below the high watermark. Where
    committed < high, the probe reads the rest with ``read_committed`` and counts only data
    messages: markers and aborted records are not lag.
    """

    def __init__(self, cfg: KafkaSettings, timeout_s: float = 10.0) -> None:
        self._cfg = cfg
        self._timeout_s = timeout_s

    def _consumer(self, group: str) -> kafka.Consumer:
        return kafka.consumer(self._cfg, group, **{
            "isolation.level": "read_committed", "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        })

    def topic_lags(self, group: str, topics: Sequence[str]) -> dict[str, int]:
        consumer = self._consumer(group)
        try:
            with kafka.kafka_errors("reading committed offsets"):
                lags_of = self._behind(consumer, topics)
        except BrokerUnavailable as exc:
            raise ProbeError(f"Kafka unreachable: {exc}") from exc
        finally:
            consumer.close()
        lags = dict.fromkeys(topics, 0)
        for tp, start, high in lags_of:
            lags[tp.topic] += self._data_messages(group, tp.topic, tp.partition, start, high)
        return lags

    def _behind(self, consumer: kafka.Consumer, topics: Sequence[str]) -> list[tuple[Any, int, int]]:
        md = consumer.list_topics(timeout=self._timeout_s)
        tps = []
        for topic in topics:
            meta = md.topics.get(topic)
            if meta is None or meta.error is not None:
                raise ProbeError(f"Kafka topic {topic} does not exist")
            tps += [kafka.TopicPartition(topic, p) for p in sorted(meta.partitions)]
        committed = consumer.committed(tps, timeout=self._timeout_s) if tps else []
        behind: list[tuple[Any, int, int]] = []  # (partition, from, high)
        for tp in committed:
            low, high = consumer.get_watermark_offsets(kafka.TopicPartition(tp.topic, tp.partition),
                                                       timeout=self._timeout_s)
            start = tp.offset if tp.offset >= 0 else low
            if high > start:
                behind.append((tp, start, high))
        return behind

    def _data_messages(self, group: str, topic: str, partition: int, start: int, high: int) -> int:
        """Data messages in [start, high) as a read_committed reader sees them (no commits made)."""
        reader = self._consumer(f"{group}.phase-probe")
        try:
            for msg in kafka.read_range(reader, topic, partition, start, high, self._timeout_s):
                offset = msg.offset()
                return high - offset if offset is not None and offset < high else 0
            return 0
        except BrokerUnavailable as exc:
            raise ProbeError(f"Kafka read of {topic}[{partition}] failed: {exc}") from exc
        finally:
            reader.close()


# --------------------------------------------------------------------------- the checker

WINDOW_INTO = {2: "window_1_2_s", 3: "window_2_3_s", 4: "window_3_4_s", 5: "window_4_5_s"}


class GateChecker:
    """Measures the gates of the step into ``target`` (2-5) and judges each."""

    def __init__(
        self, settings: Settings, store: ControlStore, clock: Clock,
        tables: TableProbe | None = None, offsets: OffsetProbe | None = None,
    ) -> None:
        self._s = settings
        self._store = store
        self._clock = clock
        self._tables = tables or BotoTableProbe(settings.dynamodb)
        self._offsets = offsets or KafkaOffsetProbe(settings.kafka)

    def window_s(self, target: int) -> float:
        return float(getattr(self._s.gates, WINDOW_INTO[target]))

    def check(self, target: int, state: PhaseState | None = None) -> list[gates.GateResult]:
        if target not in gates.GATES_FOR:
            return []
        state = state or self._store.get_phase()
        now = self._clock.now()
        return [self._one(name, target, state, now) for name in gates.GATES_FOR[target]]

    def _sum(self, counter: str, now: float, window: float) -> int:
        return self._store.window_sum(counter, now - window, now)

    def _one(self, name: str, target: int, state: PhaseState, now: float) -> gates.GateResult:
        g, window = self._s.gates, self.window_s(target)
        mapped = [t.source for t in self._s.tables]
        if name == gates.TABLES_EXIST:
            expected = list(dict.fromkeys(self._s.dynamodb.table_prefix + t.target_name
                                          for t in self._s.tables if t.embed is None))
            try:
                return gates.tables_exist(expected, self._tables.missing_tables(expected) if expected else [])
            except ProbeError as exc:
                return gates.GateResult(name, False, "unknown", "every mapped table exists", None, str(exc))
        if name == gates.WRITER_CONNECTED:
            return gates.writer_connected(self._store.get_marker(names.WRITER_HEARTBEAT), now,
                                          g.heartbeat_max_age_s)
        if name == gates.SOAK_TIME:
            return gates.soak_time(now, state.updated_at, window, state.phase)
        if name == gates.DUAL_WRITE_SUCCESS:
            letters = (self._store.get_marker(names.WRITER_DEADLETTERS) or {}).get("recent") or []
            return gates.dual_write_success(self._sum(names.DUAL_WRITE_APPLIED, now, window),
                                            self._sum(names.DUAL_WRITE_FAILED, now, window),
                                            g.min_dual_write_success, window,
                                            [d for d in letters if float(d.get("at", 0)) >= now - window])
        if name == gates.BACKFILL_COMPLETE:
            return gates.backfill_complete(self._store.get_marker(names.BACKFILL_COMPLETE), mapped)
        if name == gates.VALIDATION_ERROR_RATE:
            return gates.validation_error_rate(self._sum(names.VALIDATION_PASSED, now, window),
                                               self._sum(names.VALIDATION_FAILED, now, window),
                                               g.max_validation_error_rate, window, g.min_validations)
        if name == gates.DYNAMODB_READ_ERRORS:
            return gates.dynamodb_read_errors(self._sum(names.DYNAMODB_READ_OK, now, window),
                                              self._sum(names.DYNAMODB_READ_FAILED, now, window),
                                              g.max_dynamodb_read_error_rate, window)
        if name == gates.REPLICATION_LAG:
            topics = [table_topic(self._s.kafka.topic_prefix, s) for s in mapped]
            try:
                lags: dict[str, int] | None = self._offsets.topic_lags(self._s.writer_group, topics)
                error = ""
            except ProbeError as exc:
                lags, error = None, str(exc)
            cut = self._s.cutover  # the switch drains the rest under its freeze (gates.replication_lag_zero)
            writer = self._store.get_marker(names.WRITER_HEARTBEAT) or {}
            pace = writer.get("events_per_s")  # None: a writer of an earlier release, no estimate
            return gates.replication_lag_zero(self._store.get_marker(names.READER_HEARTBEAT), now,
                                              g.heartbeat_max_age_s, lags, error,
                                              max_lag_s=cut.gate_max_lag_s,
                                              max_behind=cut.gate_max_messages_behind,
                                              writer_events_per_s=None if pace is None else float(pace),
                                              max_drain_s=None if pace is None else cut.max_write_pause_s / 2)
        raise ValueError(f"unknown gate {name!r}")

"""Kafka adapters of the writer: the table-topic consumer and the dead-letter producer.

Offsets are never committed automatically: the writer commits a batch's offsets after
DynamoDB acknowledged every write they cover and the batch's dead letters were acknowledged
by the broker. ``read_committed`` so that aborted reader transactions are never applied.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import orjson
import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from consumers.writer.batch import DeadLetter, RawMessage
from replicator.errors import BrokerUnavailable
from replicator.settings import Settings

log = structlog.get_logger("consumers.writer")

DEAD_LETTER_FORMAT = 1


class EventConsumer(Protocol):
    def start(self) -> None: ...
    def poll_batch(self, max_messages: int, timeout: float) -> list[RawMessage]: ...
    def commit(self, offsets: dict[tuple[str, int], int]) -> None: ...
    def pause_all(self) -> None: ...
    def resume_all(self) -> None: ...
    def close(self) -> None: ...


class DeadLetterSink(Protocol):
    def send(self, letters: Iterable[DeadLetter]) -> None:
        """Publish and wait for the broker's acknowledgement of every letter."""
        ...

    def start(self) -> None: ...
    def close(self) -> None: ...


def _base_config(settings: Settings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.kafka.bootstrap_servers, **settings.kafka.extra}


class KafkaEventConsumer:
    """A ``confluent_kafka.Consumer`` in the writer's consumer group over the table topics."""

    def __init__(self, settings: Settings, topics: list[str], group: str | None = None,
                 instance_id: str | None = None, on_lag: Callable[[int], None] | None = None) -> None:
        self._config: dict[str, Any] = {
            **_base_config(settings),
            "group.id": group or settings.writer_group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
        }
        if on_lag is not None:
            self._config["statistics.interval.ms"] = 5000
            self._config["stats_cb"] = lambda stats: on_lag(consumer_lag(stats))
        if instance_id:
            # Static membership: a restarted writer with the same id takes its partitions back
            # at once instead of waiting for the dead member's session to time out.
            self._config["group.instance.id"] = instance_id
        self._topics = topics
        self._consumer: Any = None
        self._paused = False

    def start(self) -> None:
        self._consumer = Consumer(self._config)
        self._consumer.subscribe(self._topics)

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()  # leaves the group now rather than after the session time-out
            self._consumer = None

    def poll_batch(self, max_messages: int, timeout: float) -> list[RawMessage]:
        if self._paused:
            self.pause_all()  # partitions assigned since the pause start paused too
        out: list[RawMessage] = []
        for m in self._consumer.consume(num_messages=max_messages, timeout=timeout):
            err = m.error()
            if err is not None:
                if err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._PARTITION_EOF):
                    log.debug("kafka", event_error=str(err))
                    continue
                if err.fatal():
                    raise BrokerUnavailable(f"Kafka consumer: {err}")
                log.warning("kafka consumer error", error=str(err))
                continue
            out.append(RawMessage(m.topic(), m.partition(), m.offset(), m.key(), m.value()))
        if self._paused and out:
            # Delivered while pausing (a partition assigned meanwhile): rewind, apply nothing.
            first: dict[tuple[str, int], int] = {}
            for r in out:
                first.setdefault((r.topic, r.partition), r.offset)
            for (topic, partition), offset in first.items():
                try:
                    self._consumer.seek(TopicPartition(topic, partition, offset))
                except KafkaException as exc:  # not fetchable yet: the commit position still holds
                    log.warning("seek failed while paused", topic=topic, partition=partition, error=str(exc))
            return []
        return out

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        if not offsets:
            return
        tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            # A rebalance took the partition: its new owner re-applies from the last commit,
            # which the version conditions make harmless.
            log.warning("offset commit failed", error=str(exc))

    def pause_all(self) -> None:
        self._paused = True
        assignment = self._consumer.assignment()
        if assignment:
            self._consumer.pause(assignment)

    def resume_all(self) -> None:
        self._paused = False
        assignment = self._consumer.assignment()
        if assignment:
            self._consumer.resume(assignment)

    def committed(self, partitions: list[tuple[str, int]], timeout: float = 10) -> dict[tuple[str, int], int]:
        got = self._consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=timeout)
        return {(tp.topic, tp.partition): tp.offset for tp in got}


def consumer_lag(stats_json: str) -> int:
    """Sum of ``consumer_lag`` over the partitions this consumer fetches (librdkafka statistics)."""
    stats = orjson.loads(stats_json)
    lag = 0
    for topic in stats.get("topics", {}).values():
        for pid, part in topic.get("partitions", {}).items():
            if pid != "-1" and part.get("fetch_state") not in (None, "none", "stopped"):
                lag += max(int(part.get("consumer_lag", 0)), 0)
    return lag


def dead_letter_value(letter: DeadLetter) -> bytes:
    """The dead-letter message: the error, where the event came from, and its original bytes."""
    msg = letter.message
    return orjson.dumps({
        "format": DEAD_LETTER_FORMAT,
        "error": {"type": letter.error_type, "message": letter.error, "table": letter.table,
                  "key": letter.key, "reason": letter.reason, "version": letter.version},
        "source": {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset},
        "at": time.time(),
        "original_key": base64.b64encode(msg.key).decode() if msg.key is not None else None,
        "original_value": base64.b64encode(msg.value).decode() if msg.value is not None else None,
    })


class KafkaDeadLetterProducer:
    """Publishes dead letters to ``<prefix>.__deadletter`` (created if missing) and waits for acks."""

    def __init__(self, settings: Settings, topic: str, flush_timeout_s: float = 30.0) -> None:
        self._settings = settings
        self._topic = topic
        self._flush_timeout_s = flush_timeout_s
        self._producer: Any = None

    def start(self) -> None:
        ensure_topic(self._settings, self._topic, partitions=1)
        self._producer = Producer({**_base_config(self._settings), "enable.idempotence": True, "acks": "all",
                                   "linger.ms": 5})

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self._flush_timeout_s)
            self._producer = None

    def send(self, letters: Iterable[DeadLetter]) -> None:
        failures: list[str] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        n = 0
        for letter in letters:
            self._producer.produce(self._topic, key=letter.message.key, value=dead_letter_value(letter),
                                   headers={"error_reason": letter.reason}, on_delivery=on_delivery)
            n += 1
        if not n:
            return
        remaining = self._producer.flush(self._flush_timeout_s)
        if remaining or failures:
            raise BrokerUnavailable(f"dead-letter topic {self._topic}: {remaining} unacknowledged, "
                                    f"errors: {failures[:3]}")


def ensure_topic(settings: Settings, topic: str, partitions: int) -> None:
    admin = AdminClient(_base_config(settings))
    try:
        if topic in admin.list_topics(timeout=10).topics:
            return
        futures = admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                                replication_factor=settings.kafka.replication_factor)])
        for fut in futures.values():
            try:
                fut.result()
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
    except KafkaException as exc:
        raise BrokerUnavailable(f"Kafka at {settings.kafka.bootstrap_servers}: cannot create {topic}: "
                                f"{exc}") from exc

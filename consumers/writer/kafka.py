"""Kafka adapters of the writer: the table-topic consumer and the dead-letter producer.

Offsets are never committed automatically: the writer commits a batch's offsets after
DynamoDB acknowledged every write they cover and the batch's dead letters were acknowledged
by the broker. ``read_committed`` so that aborted reader transactions are never applied.

For the applied watermark (:mod:`consumers.writer.watermark`) the consumer names its member
(:attr:`KafkaEventConsumer.member_id`) and hands out the partitions assigned to it since the
last call (:meth:`KafkaEventConsumer.take_assigned`), whose committed offsets the writer
publishes even when nothing is consumed from them.
"""

from __future__ import annotations

import base64
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

import orjson
import structlog

from consumers.writer.batch import DeadLetter, RawMessage
from replicator.adapters import kafka
from replicator.errors import BrokerUnavailable
from replicator.settings import Settings
from replicator.topics import TopicSpec

log = structlog.get_logger("consumers.writer")

DEAD_LETTER_FORMAT = 1


class EventConsumer(Protocol):
    def start(self) -> None: ...
    def poll_batch(self, max_messages: int, timeout: float) -> list[RawMessage]: ...
    def commit(self, offsets: dict[tuple[str, int], int]) -> None: ...
    def pause_all(self) -> None: ...
    def resume_all(self) -> None: ...
    def close(self) -> None: ...


@runtime_checkable
class AssignmentAware(Protocol):
    """A consumer that names its group member and reports the partitions assigned to it."""

    @property
    def member_id(self) -> str: ...

    def take_assigned(self) -> list[tuple[str, int]]:
        """Partitions assigned since the last call (each assignment once)."""
        ...

    def committed(self, partitions: list[tuple[str, int]], timeout: float = 10) -> dict[tuple[str, int], int]:
        """The group's committed offsets (negative: none committed)."""
        ...


def process_member_id() -> str:
    """A member id unique to this consumer: host, process and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class DeadLetterSink(Protocol):
    def send(self, letters: Iterable[DeadLetter]) -> None:
        """Publish and wait for the broker's acknowledgement of every letter."""
        ...

    def start(self) -> None: ...
    def close(self) -> None: ...


PREFETCH_KIB = 16_384
PREFETCH_MESSAGES = 20_000


class KafkaEventConsumer:
    """A ``confluent_kafka.Consumer`` in the writer's consumer group over the table topics."""

    def __init__(self, settings: Settings, topics: list[str], group: str | None = None,
                 instance_id: str | None = None, on_lag: Callable[[int], None] | None = None) -> None:
        self._kafka = settings.kafka
        self._group = group or settings.writer_group
        self._config: dict[str, Any] = {
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
            # Bounded prefetch (issue 15): under a backlog, or while DynamoDB is down and the batch
            # in hand is retried, librdkafka's local queue stops fetching at this size instead of its
            # 64 MiB / 100k messages per partition; a few seconds of the writer's apply rate.
            "queued.max.messages.kbytes": PREFETCH_KIB,
            "queued.min.messages": PREFETCH_MESSAGES,
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
        self._member_id = instance_id or process_member_id()
        self._assigned: list[tuple[str, int]] = []
        self._rebalances = 0  # assignments and revocations so far
        self._offsets: Any = None  # end offsets for the cascades' order (never subscribes nor commits)

    @property
    def member_id(self) -> str:
        return self._member_id

    def start(self) -> None:
        self._consumer = kafka.consumer(self._kafka, self._group, **self._config)
        with kafka.kafka_errors("subscribing to the table topics"):
            self._consumer.subscribe(self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke)

    def _on_revoke(self, _consumer: Any, _partitions: list[Any]) -> None:
        self._rebalances += 1

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        self._rebalances += 1
        # Called inside poll; the client assigns them after this returns.
        self._assigned.extend((tp.topic, tp.partition) for tp in partitions)

    def take_assigned(self) -> list[tuple[str, int]]:
        taken, self._assigned = self._assigned, []
        return taken

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()  # leaves the group now rather than after the session time-out
            self._consumer = None
        if self._offsets is not None:
            self._offsets.close()
            self._offsets = None

    def _take(self, max_messages: int, timeout: float) -> list[Any]:
        """Up to ``max_messages``: wait at most ``timeout`` for the first, then take what is already
        fetched. ``consume(n, timeout)`` alone waits out its whole timeout unless n arrive, which
        put a poll timeout between every change and DynamoDB at low rates (read-your-writes
        waits on it); under load the fetch queue holds full batches, so batching is unchanged."""
        with kafka.kafka_errors("polling the table topics"):
            first = self._consumer.poll(timeout)
            if first is None:
                return []
            if max_messages <= 1:
                return [first]
            return [first, *self._consumer.consume(num_messages=max_messages - 1, timeout=0)]

    def poll_batch(self, max_messages: int, timeout: float) -> list[RawMessage]:
        if self._paused:
            self.pause_all()  # partitions assigned since the pause start paused too
        out: list[RawMessage] = []
        for m in self._take(max_messages, timeout):
            err = m.error()
            if err is not None:
                if kafka.is_unknown_topic(err) or kafka.is_partition_eof(err):
                    log.debug("kafka", event_error=str(err))
                    continue
                if err.fatal():
                    raise BrokerUnavailable(f"Kafka consumer: {err}")
                log.warning("kafka_consumer_error", error=str(err))
                continue
            out.append(RawMessage(m.topic(), m.partition(), m.offset(), m.key(), m.value()))
        if self._paused and out:
            # Delivered while pausing (a partition assigned meanwhile): rewind, apply nothing.
            first: dict[tuple[str, int], int] = {}
            for r in out:
                first.setdefault((r.topic, r.partition), r.offset)
            for (topic, partition), offset in first.items():
                try:
                    with kafka.kafka_errors("seeking back while paused"):
                        self._consumer.seek(kafka.TopicPartition(topic, partition, offset))
                except BrokerUnavailable as exc:  # not fetchable yet: the commit position still holds
                    log.warning("seek_failed_while_paused", topic=topic, partition=partition, error=str(exc))
            return []
        return out

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        if not offsets:
            return
        tps = [kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            with kafka.kafka_errors("committing offsets"):
                self._consumer.commit(offsets=tps, asynchronous=False)
        except BrokerUnavailable as exc:
            # A rebalance took the partition: its new owner re-applies from the last commit,
            # which the version conditions make harmless.
            log.warning("offset_commit_failed", error=str(exc))

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
        with kafka.kafka_errors("reading committed offsets"):
            tps = [kafka.TopicPartition(t, p) for t, p in partitions]
            got = self._consumer.committed(tps, timeout=timeout)
        return {(tp.topic, tp.partition): tp.offset for tp in got}

    # The foreign-key cascades' order (consumers.writer.cascade.order.OffsetView).

    def rebalances(self) -> int:
        """How many times partitions were assigned or revoked (positions restart from commits)."""
        return self._rebalances

    def assignment(self) -> list[tuple[str, int]]:
        with kafka.kafka_errors("reading the assignment"):
            return [(tp.topic, tp.partition) for tp in self._consumer.assignment()]

    def positions(self, partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The next offset to consume of each partition (negative: nothing consumed yet)."""
        with kafka.kafka_errors("reading consumer positions"):
            got = self._consumer.position([kafka.TopicPartition(t, p) for t, p in partitions])
        return {(tp.topic, tp.partition): tp.offset for tp in got}

    def end_offsets(self, partitions: list[tuple[str, int]],
                    timeout: float = 10) -> dict[tuple[str, int], int]:
        """The broker's end offset of each partition now (transaction markers included)."""
        out = {}
        with kafka.kafka_errors("reading end offsets"):
            if self._offsets is None:
                # A client of its own: the consumer's connections wait in long fetches (fetch.wait.max.ms),
                # which held each offset request back by up to that long.
                self._offsets = kafka.consumer(self._kafka, self._group + ".offsets")
            for t, p in partitions:
                out[(t, p)] = int(self._offsets.get_watermark_offsets(
                    kafka.TopicPartition(t, p), timeout=timeout, cached=False)[1])
        return out

    def partitions_of(self, topics: list[str], timeout: float = 10) -> list[tuple[str, int]]:
        with kafka.kafka_errors("listing partitions"):
            meta = self._consumer.list_topics(timeout=timeout)
        return [(t, p) for t in topics if t in meta.topics for p in sorted(meta.topics[t].partitions)]


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
        kafka.ensure_topics(self._settings.kafka, [TopicSpec(self._topic, partitions=1)], timeout_s=10)
        self._producer = kafka.producer(self._settings.kafka, **{"enable.idempotence": True, "acks": "all",
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
            with kafka.kafka_errors("publishing a dead letter"):
                self._producer.produce(self._topic, key=letter.message.key, value=dead_letter_value(letter),
                                       headers={"error_reason": letter.reason}, on_delivery=on_delivery)
            n += 1
        if not n:
            return
        remaining = self._producer.flush(self._flush_timeout_s)
        if remaining or failures:
            raise BrokerUnavailable(f"dead-letter topic {self._topic}: {remaining} unacknowledged, "
                                    f"errors: {failures[:3]}")


"""The reader's Kafka side: the transactional sink and the checkpoint read.

The topics it writes (:func:`replicator.topics.pipeline_topics`) are created by
:mod:`replicator.reader.service` with :func:`replicator.adapters.kafka.ensure_topics`.

Clients come from :mod:`replicator.adapters.kafka` and its :func:`kafka_errors` translates
confluent-kafka's exceptions: a broker that does not answer, or a transaction that must be
aborted, is :class:`~replicator.errors.BrokerUnavailable` (the reader rebuilds the sink and
resumes from the committed checkpoint); a fenced producer (another reader with the same
``transactional.id``) is a :class:`~replicator.errors.ConfigError`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog

from replicator.adapters.kafka import (
    Consumer,
    KafkaError,
    Producer,
    TopicPartition,
    consumer,
    is_partition_eof,
    kafka_errors,
    producer,
)
from replicator.errors import BrokerUnavailable
from replicator.reader.checkpoint import Checkpoint
from replicator.settings import Settings
from replicator.topics import checkpoint_topic

__all__ = ["KafkaTransactionalSink", "read_last_checkpoint"]

log = structlog.get_logger("replicator.reader")

_CHECKPOINT_READ_CONFIG: dict[str, Any] = {"isolation.level": "read_committed", "enable.partition.eof": True}
_PRODUCER_CONFIG: dict[str, Any] = {
    "enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "lz4",
    "batch.num.messages": 10000, "queue.buffering.max.messages": 500000,
    "queue.buffering.max.kbytes": 1048576, "transaction.timeout.ms": 60000,
    "message.max.bytes": 8 * 1024 * 1024,
}


def read_last_checkpoint(settings: Settings, key: bytes, timeout_s: float = 30.0) -> Checkpoint | None:
    """The last committed (``read_committed``) checkpoint record for ``key``."""
    topic = checkpoint_topic(settings.kafka.topic_prefix)
    group = f"{settings.kafka.topic_prefix}.checkpoint-reader.{uuid.uuid4().hex[:8]}"
    reader = consumer(settings.kafka, group, **_CHECKPOINT_READ_CONFIG)
    try:
        with kafka_errors("reading the checkpoint topic"):
            low, high = reader.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout_s)
            if high <= low:
                return None
            window = 64
            while True:
                start = max(low, high - window)
                found = _scan(reader, topic, start, high, key, timeout_s)
                if found is not None:
                    return Checkpoint.from_json(found, where=f"topic {topic}")
                if start == low:
                    return None
                window *= 16
    finally:
        reader.close()


def _scan(reader: Consumer, topic: str, start: int, high: int, key: bytes, timeout_s: float) -> bytes | None:
    """The last value for ``key`` in ``[start, high)`` of partition 0."""
    reader.assign([TopicPartition(topic, 0, start)])
    last: bytes | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = reader.poll(0.5)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if is_partition_eof(err):
                return last
            raise BrokerUnavailable(f"reading {topic} failed: {err}")
        if msg.key() == key and msg.value() is not None:
            last = msg.value()
        offset = msg.offset()
        if offset is not None and offset >= high - 1:
            return last
    raise BrokerUnavailable(f"reading {topic} did not reach its end within {timeout_s:.0f} s")


class KafkaTransactionalSink:
    """One transactional producer; ``commit`` writes the checkpoint record and commits.

    Implements :class:`~replicator.reader.ports.EventSink`. No network in ``__init__``:
    :meth:`start` creates the producer.
    """

    def __init__(self, settings: Settings, *, on_delivery_error: Callable[[], None] | None = None,
                 timeout_s: float = 30.0) -> None:
        self._settings = settings
        self._key = settings.transactional_id.encode()
        self._checkpoint_topic = checkpoint_topic(settings.kafka.topic_prefix)
        self._on_delivery_error = on_delivery_error
        self._timeout_s = timeout_s
        self._producer: Producer | None = None
        self.bytes_sent = 0

    def start(self) -> None:
        """Create the producer and fence/abort any transaction a previous instance left open."""
        self._producer = producer(self._settings.kafka, **_PRODUCER_CONFIG,
                                  **{"transactional.id": self._settings.transactional_id})
        with kafka_errors("initialising transactions"):
            self._producer.init_transactions(self._timeout_s)

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            raise RuntimeError("KafkaTransactionalSink.start() was not called")
        return self._producer

    def last_checkpoint(self) -> Checkpoint | None:
        return read_last_checkpoint(self._settings, self._key, self._timeout_s)

    def begin(self) -> None:
        with kafka_errors("beginning a transaction"):
            self.producer.begin_transaction()

    def _delivered(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            log.error("kafka_delivery_failed", error=str(err))
            if self._on_delivery_error is not None:
                self._on_delivery_error()

    def send(self, topic: str, key: bytes, value: bytes, partition: int | None = None) -> None:
        target = self.producer
        with kafka_errors("producing"):
            while True:
                try:
                    if partition is None:
                        target.produce(topic, value=value, key=key, on_delivery=self._delivered)
                    else:
                        target.produce(topic, value=value, key=key, partition=partition,
                                       on_delivery=self._delivered)
                    break
                except BufferError:
                    target.poll(0.05)  # the local queue is full: serve delivery reports, then retry
        self.bytes_sent += len(value) + len(key)

    def commit(self, checkpoint: Checkpoint) -> None:
        # Always partition 0, the one read back, even if someone created the topic with more.
        self.send(self._checkpoint_topic, self._key, checkpoint.to_json(), partition=0)
        with kafka_errors("committing a transaction"):
            self.producer.commit_transaction(self._timeout_s)

    def abort(self) -> None:
        with kafka_errors("aborting a transaction"):
            self.producer.abort_transaction(self._timeout_s)

    def poll(self) -> None:
        if self._producer is not None:
            self._producer.poll(0)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(1.0)
            self._producer = None

"""Kafka adapter of the reader: topic creation, the transactional producer, the checkpoint read.

confluent-kafka exceptions are translated here: a broker that does not answer, or a
transaction that must be aborted, is :class:`BrokerUnavailable` (the reader rebuilds the
producer and resumes from the committed checkpoint); a fenced producer (another reader with
the same ``transactional.id``) is a :class:`ConfigError`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from replicator.checkpoint import Checkpoint
from replicator.errors import BrokerUnavailable, ConfigError
from replicator.settings import Settings
from replicator.topics import checkpoint_topic, table_topic

log = structlog.get_logger("replicator.kafka")


class EventSink(Protocol):
    """A transactional sink: records and the checkpoint become visible together or not at all."""

    def begin(self) -> None: ...

    def send(self, topic: str, key: bytes, value: bytes) -> None: ...

    def commit(self, checkpoint: Checkpoint) -> None: ...

    def abort(self) -> None: ...

    def last_checkpoint(self) -> Checkpoint | None: ...

    def close(self) -> None: ...


@contextmanager
def translate_kafka_errors(what: str) -> Iterator[None]:
    try:
        yield
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if isinstance(err, KafkaError) and err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                                          KafkaError.INVALID_PRODUCER_EPOCH):
            raise ConfigError(
                f"Kafka fenced this reader while {what}: another `replicator run` uses the same "
                "transactional id (kafka.transactional_id / topic_prefix). Run one reader per migration."
            ) from exc
        raise BrokerUnavailable(f"Kafka failed while {what}: {err}") from exc


def _base_config(settings: Settings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.kafka.bootstrap_servers, **settings.kafka.extra}


def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create the mapped tables' topics and the compacted checkpoint topic if missing."""
    admin = AdminClient(_base_config(settings))
    prefix = settings.kafka.topic_prefix
    wanted: dict[str, NewTopic] = {}
    for t in settings.tables:
        name = table_topic(prefix, t.source)
        wanted[name] = NewTopic(name, num_partitions=settings.kafka.partitions,
                                replication_factor=settings.kafka.replication_factor)
    cp = checkpoint_topic(prefix)
    wanted[cp] = NewTopic(cp, num_partitions=1, replication_factor=settings.kafka.replication_factor,
                          config={"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"})
    with translate_kafka_errors("listing topics"):
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [nt for name, nt in wanted.items() if name not in existing]
    if missing:
        futures = admin.create_topics(missing, operation_timeout=timeout_s, request_timeout=timeout_s)
        for name, fut in futures.items():
            try:
                fut.result()
                log.info("topic_created", topic=name)
            except KafkaException as exc:
                err = exc.args[0]
                if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                raise BrokerUnavailable(f"creating Kafka topic {name} failed: {err}") from exc
    return [nt.topic for nt in missing]


def read_last_checkpoint(settings: Settings, key: bytes, timeout_s: float = 30.0) -> Checkpoint | None:
    """The last committed (``read_committed``) checkpoint record for ``key``."""
    topic = checkpoint_topic(settings.kafka.topic_prefix)
    consumer = Consumer({
        **_base_config(settings),
        "group.id": f"{settings.kafka.topic_prefix}.checkpoint-reader.{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False, "isolation.level": "read_committed", "enable.partition.eof": True,
    })
    try:
        with translate_kafka_errors("reading the checkpoint topic"):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=timeout_s)
        if high <= low:
            return None
        window = 64
        while True:
            start = max(low, high - window)
            found = _scan(consumer, topic, start, high, key, timeout_s)
            if found is not None:
                return Checkpoint.from_json(found, where=f"topic {topic}")
            if start == low:
                return None
            window *= 16
    finally:
        consumer.close()


def _scan(consumer: Consumer, topic: str, start: int, high: int, key: bytes,
          timeout_s: float) -> bytes | None:
    consumer.assign([TopicPartition(topic, 0, start)])
    last: bytes | None = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                return last
            raise BrokerUnavailable(f"reading {topic} failed: {err}")
        if msg.key() == key and msg.value() is not None:
            last = msg.value()
        offset = msg.offset()
        if offset is not None and offset >= high - 1:
            return last
    raise BrokerUnavailable(f"reading {topic} did not reach its end within {timeout_s:.0f} s")


class KafkaTransactionalSink:
    """One transactional producer; ``commit`` writes the checkpoint record and commits."""

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
        self._producer = Producer({
            **_base_config(self._settings), "transactional.id": self._settings.transactional_id,
            "enable.idempotence": True, "acks": "all", "linger.ms": 5, "compression.type": "lz4",
            "batch.num.messages": 10000, "queue.buffering.max.messages": 500000,
            "queue.buffering.max.kbytes": 1048576, "transaction.timeout.ms": 60000,
            "message.max.bytes": 8 * 1024 * 1024,
        })
        with translate_kafka_errors("initialising transactions"):
            self._producer.init_transactions(self._timeout_s)

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            raise RuntimeError("KafkaTransactionalSink.start() was not called")
        return self._producer

    def last_checkpoint(self) -> Checkpoint | None:
        return read_last_checkpoint(self._settings, self._key, self._timeout_s)

    def begin(self) -> None:
        with translate_kafka_errors("beginning a transaction"):
            self.producer.begin_transaction()

    def _delivered(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            log.error("kafka_delivery_failed", error=str(err))
            if self._on_delivery_error is not None:
                self._on_delivery_error()

    def send(self, topic: str, key: bytes, value: bytes, partition: int | None = None) -> None:
        producer = self.producer
        while True:
            try:
                if partition is None:
                    producer.produce(topic, value=value, key=key, on_delivery=self._delivered)
                else:
                    producer.produce(topic, value=value, key=key, partition=partition,
                                     on_delivery=self._delivered)
                break
            except BufferError:
                producer.poll(0.05)
            except KafkaException as exc:
                with translate_kafka_errors("producing"):
                    raise exc
        self.bytes_sent += len(value) + len(key)

    def commit(self, checkpoint: Checkpoint) -> None:
        producer = self.producer
        # Always partition 0, the one read back, even if someone created the topic with more.
        self.send(self._checkpoint_topic, self._key, checkpoint.to_json(), partition=0)
        with translate_kafka_errors("committing a transaction"):
            producer.commit_transaction(self._timeout_s)

    def abort(self) -> None:
        with translate_kafka_errors("aborting a transaction"):
            self.producer.abort_transaction(self._timeout_s)

    def poll(self) -> None:
        if self._producer is not None:
            self._producer.poll(0)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(1.0)
            self._producer = None

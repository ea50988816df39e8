"""The reader's Kafka side: the transactional sink and the checkpoint read.

The topics it writes (:func:`replicator.topics.pipeline_topics`) are created by
:mod:`replicator.reader.service` with :func:`replicator.adapters.kafka.ensure_topics`.

Clients come from :mod:`replicator.adapters.kafka` and its :func:`kafka_errors` translates
confluent-kafka's exceptions: a broker that does not answer, or a transaction that must be
aborted, is :class:`~replicator.errors.BrokerUnavailable` (the reader rebuilds the sink and
resumes from the committed checkpoint); a fenced producer (another reader with the same
``transactional.id``) is a :class:`~replicator.errors.ConfigError`.

For the applied watermark (:mod:`replicator.reader.watermark`) a sink given ``on_committed``
also knows the last committed data offset of every table-topic partition: read back from the
tails of the topics at start (:func:`read_data_tails`, after ``init_transactions`` has aborted
whatever a predecessor left open), then advanced from the delivery reports of each committed
transaction (``commit_transaction`` serves them all before it returns). It reports that state
with the committed checkpoint after each commit and once at start (:meth:`last_checkpoint`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
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
    read_range,
)
from replicator.errors import BrokerUnavailable
from replicator.reader.checkpoint import Checkpoint
from replicator.settings import Settings
from replicator.topics import checkpoint_topic, table_topic

__all__ = ["CommittedListener", "KafkaTransactionalSink", "read_data_tails", "read_last_checkpoint"]

TopicPartitionKey = tuple[str, int]
# Told the committed checkpoint and the last committed data offset per table-topic partition
# (None: the sink lost track of them, e.g. after an abort).
CommittedListener = Callable[[Checkpoint | None, Mapping[TopicPartitionKey, int] | None], None]

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
    last: bytes | None = None
    for msg in read_range(reader, topic, 0, start, high, timeout_s):
        if msg.key() == key and msg.value() is not None:
            last = msg.value()
    return last


def read_data_tails(settings: Settings, timeout_s: float = 30.0) -> dict[TopicPartitionKey, int]:
    """The offset of the last committed (``read_committed``) record of each table-topic partition.

    The last record of a partition written by a transactional producer is a control marker
    (never delivered), and aborted records are skipped, so ``high - 1`` is not it: the tail of
    each partition is read, in windows growing from the end. A partition without a committed
    record from its log start on gets ``low - 1`` (-1 when nothing was ever deleted from it).
    """
    topics = [table_topic(settings.kafka.topic_prefix, t.source) for t in settings.tables]
    group = f"{settings.kafka.topic_prefix}.tail-reader.{uuid.uuid4().hex[:8]}"
    reader = consumer(settings.kafka, group, **_CHECKPOINT_READ_CONFIG)
    deadline = time.monotonic() + timeout_s
    try:
        bounds = {tp: _bounds(reader, tp, deadline) for tp in _partitions(reader, topics, deadline)}
        found = {tp: low - 1 for tp, (low, high) in bounds.items() if high <= low}
        todo = {tp: b for tp, b in bounds.items() if b[1] > b[0]}
        window = 64
        while todo:
            starts = {tp: max(low, high - window) for tp, (low, high) in todo.items()}
            last = _scan_tails(reader, starts, {tp: high for tp, (_, high) in todo.items()}, deadline)
            for tp, (low, _high) in list(todo.items()):
                offset = last.get(tp)
                if offset is not None:
                    found[tp] = offset
                    del todo[tp]
                elif starts[tp] == low:
                    found[tp] = low - 1
                    del todo[tp]
            window *= 16
        return found
    finally:
        reader.close()


def _partitions(reader: Consumer, topics: list[str], deadline: float) -> list[TopicPartitionKey]:
    """Every partition of ``topics``; waits (bounded) for the metadata of topics just created."""
    while True:
        with kafka_errors("reading table-topic metadata"):
            md = reader.list_topics(timeout=max(0.1, deadline - time.monotonic()))
        missing = [t for t in topics if t not in md.topics or md.topics[t].error is not None
                   or not md.topics[t].partitions]
        if not missing:
            return [(t, p) for t in topics for p in sorted(md.topics[t].partitions)]
        if time.monotonic() >= deadline:
            raise BrokerUnavailable(f"Kafka has no metadata for {', '.join(missing)}")
        time.sleep(0.2)


def _bounds(reader: Consumer, tp: TopicPartitionKey, deadline: float) -> tuple[int, int]:
    while True:
        try:
            with kafka_errors(f"reading the offsets of {tp[0]} [{tp[1]}]"):
                low, high = reader.get_watermark_offsets(
                    TopicPartition(*tp), timeout=max(0.1, deadline - time.monotonic()))
                return int(low), int(high)
        except BrokerUnavailable:  # a partition just created has no leader yet
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def _scan_tails(reader: Consumer, starts: dict[TopicPartitionKey, int], highs: dict[TopicPartitionKey, int],
                deadline: float) -> dict[TopicPartitionKey, int | None]:
    """The last delivered offset of each partition in ``[start, high)`` (None: nothing committed)."""
    reader.assign([TopicPartition(t, p, o) for (t, p), o in starts.items()])
    last: dict[TopicPartitionKey, int | None] = dict.fromkeys(starts)
    open_ = set(starts)
    while open_:
        if time.monotonic() >= deadline:
            raise BrokerUnavailable(f"reading the table topics' tails did not finish ({len(open_)} left)")
        msg = reader.poll(0.2)
        if msg is None:
            continue
        topic, partition, offset, err = msg.topic(), msg.partition(), msg.offset(), msg.error()
        if topic is None or partition is None:
            if err is not None:
                raise BrokerUnavailable(f"reading the table topics failed: {err}")
            continue
        tp = (topic, partition)
        if err is not None:
            if is_partition_eof(err):
                open_.discard(tp)
                continue
            raise BrokerUnavailable(f"reading {topic} [{partition}] failed: {err}")
        if offset is not None and tp in last:
            last[tp] = offset
            if offset >= highs[tp] - 1:
                open_.discard(tp)
    reader.unassign()
    return last


class KafkaTransactionalSink:
    """One transactional producer; ``commit`` writes the checkpoint record and commits.

    Implements :class:`~replicator.reader.ports.EventSink`. No network in ``__init__``:
    :meth:`start` creates the producer.
    """

    def __init__(self, settings: Settings, *, on_delivery_error: Callable[[], None] | None = None,
                 timeout_s: float = 30.0, on_committed: CommittedListener | None = None) -> None:
        self._settings = settings
        self._key = settings.transactional_id.encode()
        self._checkpoint_topic = checkpoint_topic(settings.kafka.topic_prefix)
        self._on_delivery_error = on_delivery_error
        self._on_committed = on_committed
        self._timeout_s = timeout_s
        self._producer: Producer | None = None
        # Last committed data offset per table-topic partition (None: not tracked, or lost).
        self._data_offsets: dict[TopicPartitionKey, int] | None = None
        self._tx_offsets: dict[TopicPartitionKey, int] = {}  # of the open transaction's deliveries
        self._in_flight = 0  # messages produced whose delivery report has not been served
        self.bytes_sent = 0

    def start(self) -> None:
        """Create the producer and fence/abort any transaction a previous instance left open."""
        self._producer = producer(self._settings.kafka, **_PRODUCER_CONFIG,
                                  **{"transactional.id": self._settings.transactional_id})
        with kafka_errors("initialising transactions"):
            self._producer.init_transactions(self._timeout_s)
        if self._on_committed is not None:
            self._data_offsets = read_data_tails(self._settings, self._timeout_s)

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            raise RuntimeError("KafkaTransactionalSink.start() was not called")
        return self._producer

    def last_checkpoint(self) -> Checkpoint | None:
        cp = read_last_checkpoint(self._settings, self._key, self._timeout_s)
        self._report(cp)
        return cp

    def begin(self) -> None:
        self._tx_offsets = {}
        with kafka_errors("beginning a transaction"):
            self.producer.begin_transaction()

    def _delivered(self, err: KafkaError | None, msg: Any) -> None:
        self._in_flight -= 1
        if err is not None:
            log.error("kafka_delivery_failed", error=str(err))
            if self._on_delivery_error is not None:
                self._on_delivery_error()
            return
        tp = (msg.topic(), msg.partition())
        offset = msg.offset()
        if offset is not None and offset > self._tx_offsets.get(tp, -1):
            self._tx_offsets[tp] = offset

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
        self._in_flight += 1
        self.bytes_sent += len(value) + len(key)

    def send_all(self, records: Sequence[tuple[str, bytes, bytes]]) -> int:
        """``send`` of each record, in order (one error translation for them all: the reader's
        per-record cost); the bytes of their keys and values."""
        produce, delivered, poll = self.producer.produce, self._delivered, self.producer.poll
        nbytes = 0
        with kafka_errors("producing"):
            for topic, key, value in records:
                while True:
                    try:
                        produce(topic, value=value, key=key, on_delivery=delivered)
                        break
                    except BufferError:
                        poll(0.05)  # the local queue is full: serve delivery reports, then retry
                nbytes += len(key) + len(value)
        self._in_flight += len(records)
        self.bytes_sent += nbytes
        return nbytes

    def commit(self, checkpoint: Checkpoint) -> None:
        # Always partition 0, the one read back, even if someone created the topic with more.
        self.send(self._checkpoint_topic, self._key, checkpoint.to_json(), partition=0)
        with kafka_errors("committing a transaction"):
            self.producer.commit_transaction(self._timeout_s)
        if self._data_offsets is not None:
            self._settle_deliveries()
            for tp, offset in self._tx_offsets.items():
                if tp[0] != self._checkpoint_topic and offset > self._data_offsets.get(tp, -1):
                    self._data_offsets[tp] = offset
        self._tx_offsets = {}
        self._report(checkpoint)

    def _settle_deliveries(self) -> None:
        """Every delivery report of the committed transaction served (commit_transaction does it)."""
        if self._in_flight > 0:
            self.producer.flush(self._timeout_s)
        if self._in_flight > 0:
            self._data_offsets = None
            raise BrokerUnavailable(f"{self._in_flight} delivery reports of a committed transaction never "
                                    "came: the data offsets of the applied watermark are unknown")

    def _report(self, checkpoint: Checkpoint | None) -> None:
        if self._on_committed is not None:
            offsets = None if self._data_offsets is None else dict(self._data_offsets)
            self._on_committed(checkpoint, offsets)

    def abort(self) -> None:
        self._data_offsets = None  # deliveries of the aborted transaction may still come: stop tracking
        with kafka_errors("aborting a transaction"):
            self.producer.abort_transaction(self._timeout_s)

    def poll(self) -> None:
        if self._producer is not None:
            self._producer.poll(0)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(1.0)
            self._producer = None

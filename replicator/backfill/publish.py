"""Kafka side of the backfill: publish snapshot events, know when the writer has applied them.

Snapshot rows travel as ``op: "r"`` change events on the table topics, so the DynamoDB
writer applies them with the same version-conditional write, dead-letter path, metrics and
ordering as stream events (see the README's backfill section for why). The producer is
idempotent, not transactional: a chunk published twice after a crash is harmless, because
its rows carry the same version and the conditional write ignores the second copy.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import orjson

from replicator.adapters import kafka
from replicator.errors import BrokerUnavailable
from replicator.settings import Settings


class SnapshotPublisher:
    """Idempotent producer; ``flush()`` returns only when every event so far is acknowledged."""

    def __init__(self, settings: Settings) -> None:
        self._kafka = settings.kafka
        self._producer: kafka.Producer | None = None
        self._errors: list[str] = []
        # highest acknowledged offset per (topic, partition): what the writer must pass
        self.acked: dict[tuple[str, int], int] = {}

    def start(self) -> None:
        self._producer = kafka.producer(self._kafka, **{
            "enable.idempotence": True, "acks": "all", "linger.ms": 20, "compression.type": "lz4"})

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(30)
            self._producer = None

    def _on_delivery(self, err: kafka.KafkaError | None, msg: kafka.Message) -> None:
        if err is not None:
            self._errors.append(str(err))
            return
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        if topic is None or partition is None or offset is None:
            self._errors.append("delivery report without a topic/partition/offset")
            return
        self.acked[(topic, partition)] = max(self.acked.get((topic, partition), -1), offset)

    def publish(self, topic: str, key: bytes, value: bytes) -> None:
        assert self._producer is not None, "publish() before start()"
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                return
            except BufferError:
                self._producer.poll(0.1)  # local queue full: let deliveries drain
            except kafka.KafkaException as exc:
                with kafka.kafka_errors(f"publishing to {topic}"):
                    raise exc

    def flush(self, timeout_s: float = 60.0) -> None:
        assert self._producer is not None, "flush() before start()"
        remaining = self._producer.flush(timeout_s)
        errors, self._errors = self._errors, []
        if remaining or errors:
            raise BrokerUnavailable(
                f"Kafka did not acknowledge {remaining} event(s)"
                + (f"; delivery errors: {errors[:3]}" if errors else "")
            )

    def dead_letter(self, topic: str, source: str, key: str, reason: str, detail: dict[str, Any]) -> None:
        doc = {"error": {"type": "SnapshotRowError", "table": source, "key": key, "reason": reason},
               "origin": "backfill", **detail}
        self.publish(topic, key.encode(), orjson.dumps(doc, default=repr))


def wait_until_applied(settings: Settings, targets: dict[tuple[str, int], int], *,
                       timeout_s: float, stop: threading.Event,
                       on_wait: Callable[[int], None] | None = None) -> bool:
    """Block until the writer group's committed offsets pass every target offset.

    Reads the group's commits without joining it. Returns False on time-out or stop.
    """
    if not targets:
        return True
    consumer = kafka.consumer(settings.kafka, settings.writer_group)
    deadline = None if timeout_s <= 0 else time.monotonic() + timeout_s
    try:
        while not stop.is_set():
            parts = [kafka.TopicPartition(t, p) for (t, p) in targets]
            try:
                with kafka.kafka_errors("reading the writer's committed offsets"):
                    committed = consumer.committed(parts, timeout=10)
            except BrokerUnavailable:
                committed = []
            behind = sum(
                1 for tp in committed
                if tp.offset < 0 or tp.offset <= targets[(tp.topic, tp.partition)]
            ) if committed else len(targets)
            if behind == 0:
                return True
            if on_wait is not None:
                on_wait(behind)
            if deadline is not None and time.monotonic() > deadline:
                return False
            stop.wait(1.0)
        return False
    finally:
        consumer.close()

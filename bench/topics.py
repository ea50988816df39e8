"""Deleting a benchmark's Kafka topics, and waiting for it.

``AdminClient.delete_topics`` only queues the request: an admin client dropped before the
broker answered (a local variable at the end of a clean-up) may never send it, which left
benchmark topics behind. This waits, bounded, and reports what the broker refused.
"""

from __future__ import annotations

from concurrent.futures import TimeoutError as FutureTimeout

from replicator.adapters.kafka import admin_client
from replicator.settings import KafkaSettings

TIMEOUT_S = 30.0


def delete_topics(kafka: KafkaSettings, prefixes: tuple[str, ...]) -> list[str]:
    """Delete every topic whose name starts with one of ``prefixes``; the names deleted."""
    if not prefixes:
        return []
    admin = admin_client(kafka)
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefixes)]
    if not topics:
        return []
    deleted = []
    for topic, fut in admin.delete_topics(topics, operation_timeout=TIMEOUT_S).items():
        try:
            fut.result(timeout=TIMEOUT_S)
            deleted.append(topic)
        except FutureTimeout:
            print(f"clean-up: Kafka did not confirm deleting topic {topic} within {TIMEOUT_S:.0f} s")
        except Exception as exc:  # a benchmark's clean-up reports and goes on
            print(f"clean-up: deleting topic {topic} failed: {exc}")
    return deleted

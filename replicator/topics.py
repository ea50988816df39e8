"""Kafka topic names: everything the product creates is namespaced by ``kafka.topic_prefix``."""

from __future__ import annotations

from dataclasses import dataclass, field

from replicator.settings import KAFKA_NAME, Settings, legal_name


def table_topic(prefix: str, source: str) -> str:
    """Data topic of one mapped table (``source`` is ``database.table``): ``<prefix>.<db>.<table>``,
    a name with characters Kafka refuses (non-ASCII, spaces, ``$`` ...) made legal by
    :func:`~replicator.settings.legal_name`."""
    db, _, table = source.partition(".")
    return f"{prefix}.{legal_name(db, KAFKA_NAME)}.{legal_name(table, KAFKA_NAME)}"


def checkpoint_topic(prefix: str) -> str:
    """Compacted topic holding the reader's committed binlog positions."""
    return f"{prefix}.__checkpoints"


def dead_letter_topic(prefix: str) -> str:
    """Events (or snapshot rows) that could not be mapped, with the error."""
    return f"{prefix}.__deadletter"


@dataclass(frozen=True)
class TopicSpec:
    """A topic the product creates: name, partitions and topic-level config."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def pipeline_topics(settings: Settings) -> list[TopicSpec]:
    """The topics the reader and the backfill publish to: one per mapped table, keyed by
    primary key, and the compacted checkpoint topic (one partition: it is read back whole)."""
    prefix = settings.kafka.topic_prefix
    specs = [TopicSpec(table_topic(prefix, t.source), settings.kafka.partitions) for t in settings.tables]
    specs.append(TopicSpec(checkpoint_topic(prefix), 1,
                           {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}))
    return specs


def dead_letter_spec(settings: Settings) -> TopicSpec:
    return TopicSpec(dead_letter_topic(settings.kafka.topic_prefix), 1)

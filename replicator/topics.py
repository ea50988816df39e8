"""Kafka topic names: everything the product creates is namespaced by ``kafka.topic_prefix``."""

from __future__ import annotations


def table_topic(prefix: str, source: str) -> str:
    """Data topic of one mapped table (``source`` is ``database.table``)."""
    return f"{prefix}.{source}"


def checkpoint_topic(prefix: str) -> str:
    """Compacted topic holding the reader's committed binlog positions."""
    return f"{prefix}.__checkpoints"


def dead_letter_topic(prefix: str) -> str:
    """Events (or snapshot rows) that could not be mapped, with the error."""
    return f"{prefix}.__deadletter"

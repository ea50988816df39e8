"""The Protocols the writer loop depends on; the real implementations are injected by :mod:`.service`.

- ``EventConsumer``: the table topics (:class:`consumers.writer.kafka.KafkaEventConsumer`);
- ``DeadLetterSink``: the dead-letter topic (:class:`consumers.writer.kafka.KafkaDeadLetterProducer`);
- ``Applier``: the version-conditional writes (:class:`consumers.writer.applier.ConditionalApplier`).

The first two are defined next to their Kafka adapters and re-exported here, so that
:class:`~consumers.writer.runner.Writer` is typed on this module only. In-memory fakes of all
three ship in :mod:`replicator.testing`.
"""

from __future__ import annotations

from typing import Protocol

from consumers.writer.applier import WriteResult
from consumers.writer.kafka import DeadLetterSink, EventConsumer
from replicator.mapping import ConditionalWrite

__all__ = ["Applier", "DeadLetterSink", "EventConsumer"]


class Applier(Protocol):
    """Sends distinct conditional writes and says, per write, what DynamoDB did with it."""

    @property
    def mode(self) -> str:
        """How requests are made (logged at start-up): ``transact``, ``put``, or a fake's name."""
        ...

    @property
    def concurrency(self) -> int:
        """Requests in flight at most (logged at start-up)."""
        ...

    @property
    def pending(self) -> int:
        """Writes handed to :meth:`apply` and not yet acknowledged (the backlog gauge)."""
        ...

    def start(self) -> None: ...

    def close(self) -> None: ...

    def apply(self, writes: list[ConditionalWrite]) -> list[WriteResult]:
        """Returns once every write is acknowledged: ``applied``, ``replayed`` (the stored version
        was not lower) or ``rejected`` (with DynamoDB's reason; the writer dead-letters it)."""
        ...

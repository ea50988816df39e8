"""In-memory stand-ins for DynamoDB and Kafka in unit tests of the gate checker."""

from __future__ import annotations

from collections.abc import Sequence

from replicator.errors import ProbeError


class FakeTables:
    def __init__(self, existing: set[str]) -> None:
        self.existing = existing

    def missing_tables(self, tables: Sequence[str]) -> list[str]:
        return [t for t in tables if t not in self.existing]


class FakeOffsets:
    def __init__(self, lags: dict[str, int] | None = None, error: str = "") -> None:
        self.lags = lags or {}
        self.error = error
        self.asked: list[tuple[str, list[str]]] = []

    def topic_lags(self, group: str, topics: Sequence[str]) -> dict[str, int]:
        self.asked.append((group, list(topics)))
        if self.error:
            raise ProbeError(self.error)
        return {t: self.lags.get(t, 0) for t in topics}

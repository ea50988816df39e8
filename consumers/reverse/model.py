"""What one stream record becomes, and what MySQL did with it: plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Op = Literal["upsert", "delete"]
Verdict = Literal["applied", "retry", "rejected"]


@dataclass(frozen=True, slots=True)
class Change:
    """One row change to apply to MySQL: a whole-row upsert, or a delete by primary key."""

    source: str  # database.table
    op: Op
    pk: tuple[Any, ...]  # primary-key values as SQL parameters: the row's identity
    key_text: str  # the key for logs and dead letters ("id=42")
    params: tuple[Any, ...]  # upsert: one per column of the table's plan; delete: the pk
    version: int
    sequence: str  # the stream record's sequence number
    written_at: float  # when the application wrote it (epoch seconds)

    @property
    def identity(self) -> tuple[str, tuple[Any, ...]]:
        return self.source, self.pk


@dataclass(frozen=True, slots=True)
class Rejected:
    """An item MySQL cannot hold (or that cannot be read back as a row): a dead letter."""

    source: str
    pk: tuple[Any, ...]
    key_text: str
    reason: str  # short code: "too-long", "attribute_without_column", "duplicate_key" ...
    message: str
    version: int
    sequence: str
    written_at: float

    @property
    def identity(self) -> tuple[str, tuple[Any, ...]]:
        return self.source, self.pk

    @classmethod
    def of(cls, change: Change, reason: str, message: str) -> Rejected:
        return cls(change.source, change.pk, change.key_text, reason, message, change.version,
                   change.sequence, change.written_at)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A record that is not this process's to apply; ``reason`` labels the skip counter."""

    reason: str


Translated = Change | Rejected | Skipped


@dataclass(frozen=True, slots=True)
class Outcome:
    """What MySQL did with one change: applied, worth another try later, or refused for good."""

    verdict: Verdict
    reason: str = ""
    message: str = ""


APPLIED = Outcome("applied")
#: Older than what MySQL already holds for the row (:mod:`consumers.reverse.order`): nothing to write.
SUPERSEDED = Outcome("applied", "superseded")

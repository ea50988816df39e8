"""The reverse loop's state: a page of one shard in flight, each shard's read position, each
table's stream and checkpoint; and the coalescing of a page to each row's last change. No I/O."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from consumers.reverse.model import Change, Rejected, Skipped, Translated
from consumers.reverse.order import RANK
from consumers.reverse.records import Target
from consumers.reverse.shards import Checkpoint, Shard


@dataclass
class Page:
    last_sequence: str
    changes: list[Change]
    letters: list[Rejected]
    first_try: float
    clears: list[tuple[str, str]] = field(default_factory=list)  # (source, key) of applied changes
    attempts: int = 0
    next_try: float = 0.0


Fetched = tuple[list[dict[str, Any]], str | None]


@dataclass
class ShardState:
    shard: Shard
    iterator: str | None = None
    page: Page | None = None
    at_end: bool = False
    closed: bool = False  # read to its end: finished once its last page is settled
    last_count: int = 0
    read_at: float = 0.0  # wall time the last read of this shard was sent
    prefetch: Future[Fetched] | None = None  # the next page, asked for while this one is applied
    prefetch_at: float = 0.0


@dataclass
class TableStream:
    target: Target
    checkpoint: Checkpoint
    shards: dict[str, ShardState] = field(default_factory=dict)
    listed: list[Shard] = field(default_factory=list)
    refresh_at: float = 0.0
    dirty: bool = False

    @property
    def name(self) -> str:
        return self.target.name


def coalesce(items: Iterable[Translated]) -> tuple[list[Change | Rejected], int, list[Skipped]]:
    """The newest change of each row, in the stream order of those changes; the number of
    changes superseded; the skips.

    Newest by (version, delete before upsert), the order :mod:`.order` keeps in MySQL, not by
    position: the two halves of a moved row are records of two items, which a page may hold in
    either order (at one version, the row at its new item wins over the tombstone at the old)."""
    last: dict[tuple[str, tuple[object, ...]], Change | Rejected] = {}
    skipped: list[Skipped] = []
    superseded = 0
    for x in items:
        if isinstance(x, Skipped):
            skipped.append(x)
            continue
        ident = (x.source, x.pk or (x.key_text,))
        before = last.get(ident)
        if before is not None:
            superseded += 1
            if _stamp(before) > _stamp(x):
                continue
            del last[ident]
        last[ident] = x
    return list(last.values()), superseded, skipped


def _stamp(x: Change | Rejected) -> tuple[int, int]:
    return x.version, RANK[x.op] if isinstance(x, Change) else RANK["upsert"]

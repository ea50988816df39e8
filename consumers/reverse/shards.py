"""Shard lineage and the checkpoint of one table's stream. Pure: no clients, no I/O.

A DynamoDB stream is a tree of shards: a shard closes (after about four hours, or when the
table's partitions split) and its children take over its keys. One item's records are in
order within a shard and across a parent and its children, so a child is read only once its
parent has been read to its end (``NextShardIterator`` absent). A parent that the stream no
longer lists (trimmed after 24 h) does not hold its children back.

The checkpoint (control-store marker ``reverse.checkpoint.<table>``) holds, per shard, the
sequence number of the last record whose MySQL change is committed, and the shards read to
their end. It is written only after the MySQL commit of the records it covers, so a restart
(kill -9 included) re-reads from there and re-applies at most what was committed after the
last checkpoint, which the upserts and deletes by primary key make harmless.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from replicator.errors import CorruptCheckpointError


@dataclass(frozen=True, slots=True)
class Shard:
    id: str
    parent: str | None = None
    closed: bool = False  # has an ending sequence number: it will end


def parse_shards(described: Iterable[dict[str, Any]]) -> list[Shard]:
    """DescribeStream's ``Shards`` as :class:`Shard` s, in the order given."""
    return [Shard(str(s["ShardId"]), s.get("ParentShardId") or None,
                  bool((s.get("SequenceNumberRange") or {}).get("EndingSequenceNumber")))
            for s in described]


def readable(shards: Sequence[Shard], finished: Iterable[str]) -> list[Shard]:
    """The shards to read now: not finished, and whose parent is finished or no longer listed.

    Parents come before their children (a child may become readable in the same call only
    once its parent is in ``finished``)."""
    done = set(finished)
    listed = {s.id for s in shards}
    return [s for s in shards
            if s.id not in done and (s.parent is None or s.parent not in listed or s.parent in done)]


@dataclass
class Checkpoint:
    """Where the reverse replication of one DynamoDB table's stream stands (module docstring)."""

    table: str
    stream_arn: str
    positions: dict[str, str | None] = field(default_factory=dict)  # shard -> last applied sequence
    finished: set[str] = field(default_factory=set)

    def position(self, shard: str) -> str | None:
        return self.positions.get(shard)

    def advance(self, shard: str, sequence: str) -> None:
        self.positions[shard] = sequence

    def finish(self, shard: str) -> None:
        self.finished.add(shard)

    def lost(self, listed: Iterable[str]) -> list[str]:
        """Shards begun but not finished that the stream no longer lists: their tail was trimmed
        before it was read (data lost)."""
        ids = set(listed)
        return sorted(s for s, seq in self.positions.items()
                      if seq is not None and s not in self.finished and s not in ids)

    def prune(self, listed: Iterable[str]) -> None:
        """Forget finished shards the stream no longer lists (trimmed after they were read)."""
        ids = set(listed)
        for s in [s for s in self.finished if s not in ids]:
            self.finished.discard(s)
            self.positions.pop(s, None)

    def to_doc(self, now: float | None = None) -> dict[str, Any]:
        return {"stream_arn": self.stream_arn, "shards": dict(self.positions),
                "finished": sorted(self.finished), "ts": time.time() if now is None else now}

    @classmethod
    def from_doc(cls, table: str, doc: dict[str, Any]) -> Checkpoint:
        try:
            shards = doc["shards"]
            if not isinstance(shards, dict):
                raise TypeError("shards is not a mapping")
            return cls(table, str(doc["stream_arn"]),
                       {str(k): (None if v is None else str(v)) for k, v in shards.items()},
                       {str(s) for s in doc.get("finished", ())})
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptCheckpointError(
                f"the reverse replication checkpoint of DynamoDB table {table!r} cannot be read ({exc}): "
                f"{doc!r}; delete the control-store marker reverse.checkpoint.{table} only if MySQL has "
                f"been reconciled with DynamoDB, since the stream is then read again from its oldest "
                f"record") from exc

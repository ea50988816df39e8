"""In-memory fakes of the reverse loop's ports, and stream records as DynamoDB Streams gives them.

``replicator.testing`` holds the shared fakes, but it may not import ``consumers`` (layering);
these two satisfy ``consumers.reverse.ports`` structurally and live with the tests.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from consumers.reverse.model import APPLIED, Change, Outcome
from consumers.reverse.plan import TablePlan
from consumers.reverse.records import Route, Target
from consumers.reverse.shards import Shard
from replicator.errors import ConfigError, SourceUnavailable, TargetRejected, TargetUnavailable
from replicator.events import Row
from replicator.mapping import ORIGIN_APP, TableMapper
from replicator.mapping.conditional import metadata
from replicator.mapping.names import DELETED_ATTR, TTL_ATTR
from replicator.settings import TableMapping

COLUMNS = (("id", "int(11)"), ("email", "varchar(10)"), ("n", "int(11)"))


def users_plan(source: str = "shop.users", **mapping: Any) -> TablePlan:
    mapper = TableMapper(TableMapping(source=source, **mapping), COLUMNS, ("id",))
    mapper.validate()
    return TablePlan(mapper, not_null={"id"})


def target(*plans: TablePlan, name: str = "users") -> Target:
    return Target(name, [Route(p) for p in plans])


def app_version(at: float, generation: int = 1) -> int:
    return generation << 52 | int(at * 1e6)


def item(plan: TablePlan, row: Row, version: int, origin: str = ORIGIN_APP) -> dict[str, Any]:
    return plan.mapper.to_item(row, metadata=metadata(version, origin))


def tomb(plan: TablePlan, row: Row, version: int, origin: str = ORIGIN_APP) -> dict[str, Any]:
    out: dict[str, Any] = dict(plan.mapper.key(row))
    out.update(metadata(version, origin))
    out[DELETED_ATTR] = {"BOOL": True}
    out[TTL_ATTR] = {"N": "1"}
    return out


def record(seq: int, keys: dict[str, Any], new: dict[str, Any] | None, old: dict[str, Any] | None = None,
           name: str | None = None) -> dict[str, Any]:
    """One stream record (NEW_AND_OLD_IMAGES) the way boto3 returns it."""
    d: dict[str, Any] = {"Keys": keys, "SequenceNumber": f"{seq:021d}",
                         "StreamViewType": "NEW_AND_OLD_IMAGES",
                         "ApproximateCreationDateTime": dt.datetime.now(dt.UTC).replace(microsecond=0)}
    if new is not None:
        d["NewImage"] = new
    if old is not None:
        d["OldImage"] = old
    return {"eventName": name or ("REMOVE" if new is None else "MODIFY" if old else "INSERT"), "dynamodb": d}


@dataclass
class FakeShard:
    parent: str | None = None
    closed: bool = False
    records: list[dict[str, Any]] = field(default_factory=list)
    trimmed_before: int = 0  # records with an index below this are gone


class FakeStreams:
    """A ``StreamSource``: shards as lists; iterators are ``shard:index``."""

    def __init__(self, views: dict[str, str | None] | None = None) -> None:
        self.shards_of: dict[str, dict[str, FakeShard]] = {}
        self.views = views or {}
        self.expire_next = False
        self.reads: list[tuple[str, int]] = []  # (shard, index) of each GetRecords

    def add(self, table: str, shard: str, *records: dict[str, Any], parent: str | None = None,
            closed: bool = False) -> FakeShard:
        s = self.shards_of.setdefault(table, {}).setdefault(shard, FakeShard(parent, closed))
        s.records.extend(records)
        s.closed = s.closed or closed
        return s

    def stream_arn(self, table: str) -> str:
        view = self.views.get(table, "NEW_AND_OLD_IMAGES")
        if view != "NEW_AND_OLD_IMAGES":
            raise ConfigError(f"DynamoDB table {table!r} has no NEW_AND_OLD_IMAGES stream")
        return f"arn:{table}"

    def shards(self, table: str, stream_arn: str) -> list[Shard]:
        return [Shard(k, v.parent, v.closed) for k, v in self.shards_of.get(table, {}).items()]

    def iterator(self, table: str, stream_arn: str, shard: str, after: str | None) -> str:
        s = self.shards_of[table][shard]
        if after is None:
            return f"{table}:{shard}:{s.trimmed_before}"
        index = [r["dynamodb"]["SequenceNumber"] for r in s.records].index(after)
        if index < s.trimmed_before:
            raise TargetRejected("trimmed (fake)", code="TrimmedDataAccessException")
        return f"{table}:{shard}:{index + 1}"

    def records(self, table: str, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        if self.expire_next:
            self.expire_next = False
            raise TargetUnavailable("expired", code="ExpiredIteratorException")
        tbl, shard, index = iterator.rsplit(":", 2)
        s = self.shards_of[tbl][shard]
        i = int(index)
        self.reads.append((shard, i))
        out = s.records[i:i + limit]
        nxt = i + len(out)
        if s.closed and nxt >= len(s.records):
            return out, None
        return out, f"{tbl}:{shard}:{nxt}"


class FakeSink:
    """A ``RowSink`` over dicts: rows by (source, pk); ``refuse`` answers chosen keys."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, tuple[Any, ...]], tuple[Any, ...]] = {}
        self.log: list[Change] = []  # every change applied, in order
        self.refuse: dict[tuple[Any, ...], Outcome] = {}
        self.down = 0  # the next n calls fail as if MySQL were unreachable
        self.calls = 0
        self.prunes: list[float] = []  # prune_versions calls: their older_than_s
        self.prune_error: Exception | None = None

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def apply(self, changes: Sequence[Change]) -> list[Outcome]:
        self.calls += 1
        if self.down:
            self.down -= 1
            raise SourceUnavailable("MySQL is down (fake)")
        out = []
        for c in changes:
            verdict = self.refuse.get(c.pk)
            if verdict is not None:
                out.append(verdict)
                continue
            self.log.append(c)
            if c.op == "delete":
                self.rows.pop((c.source, c.pk), None)
            else:
                self.rows[(c.source, c.pk)] = c.params
            out.append(APPLIED)
        return out

    def prune_versions(self, older_than_s: float) -> int:
        self.prunes.append(older_than_s)
        if self.prune_error is not None:
            raise self.prune_error
        return 3


class StepClock:
    """Wall and monotonic time that the test moves."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

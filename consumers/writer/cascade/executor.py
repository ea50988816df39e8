"""A parent change -> its children's changes, at the parent's version, through the FK GSIs.

:meth:`CascadeExecutor.cascade` takes one applied parent change (a delete, or an update of
referenced columns) and, level by level down to InnoDB's depth (15), finds each cascading foreign
key's children with a query of the child table's GSI on the foreign-key attributes (tombstones and
other sources' items filtered out), computes what InnoDB did to them (deleted, foreign key set to
NULL, or to the parent's new values; a key that contains the foreign key moves: tombstone + put),
and writes them with the writers' version-conditional put **at the parent event's version**: a
child the application changed after the cascade (higher version) survives, one changed before is
overwritten, a replay is harmless. Several actions reaching one child at one level are combined
(two SET NULL foreign keys of one row), since they share one version.

A child the cascade deletes keeps its attributes in its tombstone (``_deleted``, ``_ttl``, as every
tombstone; readers treat it as absent): it stays in the GSI, so a cascade repeated after a crash
between two levels still finds it, and goes on to its children. The query takes tombstones of the
cascade's own version, and live items of a lower one; an item of a higher version changed after the
cascade (a later change of a table without children of its own is not held back) and is left alone.

Every action also leaves a cascade record in the records table (``id`` = foreign key + parent
values, ``v`` = version; kept as long as tombstones): a snapshot row read before a cascade and
applied after it (:meth:`CascadeExecutor.snapshot_rows`) is turned into what the cascade made of
it, written over the snapshot row only.

A GSI is eventually consistent: on AWS a child written a moment before its parent's cascade may
not be in the index yet when the cascade queries it. The executor remembers the child rows it saw
written in the last :data:`GSI_LAG_WINDOW_S` seconds (:meth:`CascadeExecutor.note_written`: every
family message the writer applies, and the cascade's own puts) by foreign-key values, and reads
those the query did not return with a consistent ``GetItem``: a child this writer wrote is found
whatever the index shows. What another writer process wrote is not (docs/design.md, limits).

DynamoDB is reached through the writer's client (queries, retried on throttling without limit)
and the :class:`~consumers.writer.ports.Applier` (writes).
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from consumers.writer.ports import Applier
from replicator.adapters.dynamodb import dynamo_errors
from replicator.backoff import Backoff
from replicator.errors import KeyShapeError, MappingError, TargetUnavailable
from replicator.events import ChangeEvent, Row, decode_value, encode_value
from replicator.mapping import (
    DELETED_ATTR,
    ORIGIN_CDC,
    TTL_ATTR,
    VERSION_ATTR,
    ConditionalWrite,
    TableMapper,
    dynamodb_query_params,
    is_tombstone,
    upsert,
)
from replicator.mapping.conditional import metadata
from replicator.mapping.foreign_keys import (
    MAX_DEPTH,
    CascadeAction,
    CascadeGraph,
    ForeignKey,
    action_for,
    cascaded_row,
    references,
)

log = structlog.get_logger("consumers.writer.cascade")

#: The records table's name after ``dynamodb.table_prefix``.
RECORDS_TABLE = "replicator-cascades"

Identity = tuple[str, Any]
#: (parent table, old row, new row or None, version): one parent change to cascade.
Trigger = tuple[str, Row, Row | None, int]
#: GSI queries in flight at once when several cascades run together.
QUERY_CONCURRENCY = 8
#: How long a child write is remembered for the cascades whose GSI query may not show it yet. AWS
#: does not bound a GSI's propagation; it is usually well under a second unless the index is throttled.
GSI_LAG_WINDOW_S = 30.0
#: Child writes remembered at most (the oldest are forgotten first).
RECENT_KEPT = 200_000


def record_id(fk: ForeignKey, values: tuple[Any, ...]) -> str:
    """The records-table partition key of one foreign key's children of one parent."""
    return fk.ident + "#" + orjson.dumps([encode_value(v) for v in values]).decode()


@dataclass(frozen=True, slots=True)
class WriteOver(ConditionalWrite):
    """A write at ``version`` that replaces only an item stored at ``below - 1`` or lower."""

    below: int = 0

    def _put(self) -> dict[str, Any]:
        params = ConditionalWrite._put(self)
        params["ExpressionAttributeValues"] = {":v": {"N": str(self.below)}}
        return params


@dataclass
class _Change:
    table: str
    before: Row
    after: Row | None
    kinds: list[str] = field(default_factory=list)


class RecentChildren:
    """Keys of child items written in the last ``window_s`` seconds, by foreign key and its values."""

    def __init__(self, window_s: float = GSI_LAG_WINDOW_S, kept: int = RECENT_KEPT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.kept = kept
        self._clock = clock
        self._by_parent: dict[tuple[str, tuple[Any, ...]], dict[Any, dict[str, Any]]] = {}
        self._order: deque[tuple[float, tuple[str, tuple[Any, ...]], Any]] = deque()

    def note(self, fk: ForeignKey, values: tuple[Any, ...], key: dict[str, Any]) -> None:
        if self.window_s <= 0:
            return
        now = self._clock()
        slot = (fk.ident, values)
        ident = _identity(key)
        self._by_parent.setdefault(slot, {})[ident] = key
        self._order.append((now, slot, ident))
        self._expire(now)

    def find(self, fk: ForeignKey, values: tuple[Any, ...]) -> dict[Any, dict[str, Any]]:
        self._expire(self._clock())
        return dict(self._by_parent.get((fk.ident, values), {}))

    def _expire(self, now: float) -> None:
        while self._order and (now - self._order[0][0] > self.window_s or len(self._order) > self.kept):
            _, slot, ident = self._order.popleft()
            keys = self._by_parent.get(slot)
            if keys is not None:
                keys.pop(ident, None)  # a later note of the same key is noted again further on
                if not keys:
                    del self._by_parent[slot]


@dataclass
class CascadeStats:
    applied: int = 0  # child changes DynamoDB took
    replayed: int = 0  # child changes DynamoDB already held (or a later change of the child)
    records: int = 0
    depth: int = 0


class CascadeExecutor:
    """See the module docstring; ``mappers`` / ``targets`` by source table (``database.table``)."""

    def __init__(self, graph: CascadeGraph, mappers: Mapping[str, TableMapper], targets: Mapping[str, str],
                 client: Any, applier: Applier, records_table: str, tombstone_ttl_s: int, *,
                 on_applied: Callable[[str, str, int], None] | None = None,
                 on_failed: Callable[[str], None] | None = None,
                 backoff: Backoff | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.graph = graph
        self.mappers = mappers
        self.targets = targets
        self.client = client
        self.applier = applier
        self.records_table = records_table
        self.tombstone_ttl_s = tombstone_ttl_s
        self._on_applied = on_applied or (lambda table, action, n: None)
        self._on_failed = on_failed or (lambda table: None)
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self.recent = RecentChildren()

    def note_written(self, table: str, row: Row | None) -> None:
        """A row of ``table`` just written (or sent to be): remembered while a GSI may not show it."""
        if row is None:
            return
        fks = self.graph.of_child(table)
        if not fks:
            return
        try:
            key = self.mappers[table].key(row)
        except MappingError:
            return
        for fk in fks:
            values = tuple(row.get(c) for c in fk.columns)
            if all(v is not None for v in values):
                self.recent.note(fk, values, key)

    # ----------------------------------------------------------------- parent changes

    def cascade(self, table: str, before: Row, after: Row | None, version: int, now: float) -> CascadeStats:
        """Reproduce what InnoDB cascaded from one change of ``table`` (``after`` None: a delete)."""
        stats = CascadeStats()
        frontier = [_Change(table, before, after)]
        visited = self._start_visited(table, before)
        for depth in range(1, MAX_DEPTH + 2):
            changes, records = self._level(frontier, version, now, visited)
            stats.records += len(records)
            if not changes:
                self.applier.apply(records)
                break
            if depth > MAX_DEPTH:
                log.error("cascade_too_deep", cascade={"table": table, "version": version}, depth=depth,
                          hint="InnoDB refuses cascades deeper than 15; these items were left as they are")
                break
            stats.depth = depth
            writes: list[ConditionalWrite] = list(records)  # a crash before all are acknowledged: replayed
            for change in changes.values():
                writes += self._writes(change, version, now)
            self._apply(writes, changes, stats)
            frontier = list(changes.values())
            visited.update(changes)
        if stats.records:
            log.debug("cascade_applied", cascade={"table": table, "version": version,
                                                   "op": "delete" if after is None else "update"},
                      applied=stats.applied, replayed=stats.replayed, depth=stats.depth)
        return stats

    def _start_visited(self, table: str, before: Row) -> set[Identity]:
        """A self-reference may lead back to the parent row itself: it counts as reached."""
        visited: set[Identity] = set()
        if table in self.mappers:
            with contextlib.suppress(MappingError):
                visited.add((table, _identity(self.mappers[table].key(before))))
        return visited

    def _level(self, frontier: list[_Change], version: int, now: float,
               visited: set[Identity]) -> tuple[dict[Identity, _Change], list[ConditionalWrite]]:
        """The children one level down, with every action that reaches each one; the actions' records."""
        changes: dict[Identity, _Change] = {}
        records: list[ConditionalWrite] = []
        for parent in frontier:
            for fk in self.graph.children_of(parent.table):
                action = action_for(fk, parent.before, parent.after)
                if action is None:
                    continue
                records.append(self._record(action, version, now))
                mapper = self.mappers[fk.child]
                for item in self._children(action, version):
                    row = mapper.to_row(item)
                    ident = (fk.child, _identity(mapper.key(row)))
                    if ident in visited:  # a cycle: each row is reached once
                        continue
                    change = changes.setdefault(ident, _Change(fk.child, row, row))
                    if change.after is not None:
                        change.after = cascaded_row(action, change.after)
                    change.kinds.append(action.kind)
        return changes, records

    def _children(self, action: CascadeAction, version: int) -> Iterator[dict[str, Any]]:
        """The children as they were at ``version``: live ones of a lower version, and those of this
        version (a replay: written by this cascade before a crash, tombstones included)."""
        fk = action.fk
        mapper = self.mappers[fk.child]
        index = mapper.index(fk.index_name)
        values = dict(zip(fk.columns, action.parent_values, strict=True))
        start: dict[str, Any] | None = None
        recent = self.recent.find(fk, action.parent_values)
        while True:
            try:
                params = _with_tombstones(dynamodb_query_params(self.targets[fk.child], index, values, start))
            except KeyShapeError:  # a parent value no child attribute can hold: no children
                return
            page = self._call("finding cascaded children", self.targets[fk.child],
                              lambda p=params: self.client.query(**p))  # type: ignore[misc]
            for item in page.get("Items", ()):
                key = {a.name: item[a.name] for a in mapper.key_attributes}
                recent.pop(_identity(key), None)
                if not _at(item, version):
                    continue
                if action.kind == "delete":
                    yield item  # a tombstone keeps the row; a stale copy of it changes nothing that matters
                    continue
                # The new row is made from the item: not from an index copy that may be behind the table.
                fresh = self._read_child(action, key, version)
                if fresh is not None:
                    yield fresh
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        # Written a moment ago and not in the index yet (AWS GSIs are eventually consistent).
        for key in recent.values():
            item = self._read_child(action, key, version)
            if item is not None:
                log.info("cascade_child_not_in_index", cascade={"table": fk.child, "version": version,
                                                                 "constraint": fk.name})
                yield item

    def _read_child(self, action: CascadeAction, key: dict[str, Any], version: int) -> dict[str, Any] | None:
        """The child item as the table holds it now (consistent read), if it is still one of the
        action's children and the cascade's to change."""
        fk = action.fk
        params = {"TableName": self.targets[fk.child], "Key": key, "ConsistentRead": True}
        got = self._call("reading a cascaded child", self.targets[fk.child],
                         lambda p=params: self.client.get_item(**p))  # type: ignore[misc]
        item: dict[str, Any] | None = got.get("Item")
        if item is None or not _at(item, version):
            return None
        try:
            row = self.mappers[fk.child].to_row(item)
        except MappingError:
            return None
        return item if references(action, row) else None

    def _record(self, action: CascadeAction, version: int, now: float) -> ConditionalWrite:
        key = {"id": {"S": record_id(action.fk, action.parent_values)}, "v": {"N": str(version)}}
        item = dict(key)
        item.update({
            VERSION_ATTR: {"N": str(version)}, "action": {"S": action.kind},
            "new": {"S": orjson.dumps([encode_value(v) for v in action.new_values]).decode()},
            TTL_ATTR: {"N": str(int(now) + self.tombstone_ttl_s)},
        })
        return ConditionalWrite(self.records_table, key, item, version, tombstone=False)

    def _writes(self, change: _Change, version: int, now: float,
                below: int | None = None) -> list[ConditionalWrite]:
        mapper = self.mappers[change.table]
        target = self.targets[change.table]
        expires = int(now) + self.tombstone_ttl_s
        try:
            if change.after is None:
                writes = [_tombstone(mapper, target, change.before, version, expires)]
            else:
                put = upsert(mapper, target, change.after, version, ORIGIN_CDC)
                self.note_written(change.table, change.after)
                old_key = mapper.key(change.before)
                writes = [put] if old_key == put.key else [
                    _tombstone(mapper, target, change.before, version, expires), put]
        except MappingError as exc:
            self._on_failed(change.table)
            log.error("cascade_write_unmappable", marker="DualWrite", outcome="failed", table=change.table,
                      cascade={"version": version, "actions": change.kinds}, error=str(exc),
                      reason=exc.reason)
            return []
        if below is None:
            return writes
        return [WriteOver(w.table, w.key, w.item, w.version, w.tombstone, below=below) for w in writes]

    def _apply(self, writes: list[ConditionalWrite], changes: Mapping[Identity, _Change],
               stats: CascadeStats) -> list[str]:
        sources: dict[Identity, _Change] = {}
        for c in changes.values():
            mapper = self.mappers[c.table]
            sources[(self.targets[c.table], _identity(mapper.key(c.before)))] = c
            if c.after is not None:
                with contextlib.suppress(MappingError):  # the put failed to map: logged in _writes
                    sources[(self.targets[c.table], _identity(mapper.key(c.after)))] = c
        outcomes: list[str] = []
        for r in self.applier.apply(writes):
            if r.write.table == self.records_table:
                continue
            change = sources.get(r.write.identity)
            table = change.table if change is not None else r.write.table
            action = "+".join(sorted(set(change.kinds))) if change is not None else "update"
            outcomes.append(r.outcome)
            if r.outcome == "applied":
                stats.applied += 1
                self._on_applied(table, action, 1)
            elif r.outcome == "replayed":
                stats.replayed += 1
            else:
                self._on_failed(table)
                log.error("cascade_write_rejected", marker="DualWrite", outcome="failed", table=table,
                          cascade={"version": r.write.version, "action": action}, error=r.error)
        return outcomes

    def cascade_many(self, triggers: list[Trigger], now: float) -> CascadeStats | None:
        """Several parent deletes at once: their children found concurrently, written in one request.

        Only when every action deletes and no row is reached by two of them (then the order between
        them cannot matter); otherwise None, and the caller runs them one by one with :meth:`cascade`.
        """
        if any(after is not None for _, _, after, _ in triggers):
            return None
        with ThreadPoolExecutor(QUERY_CONCURRENCY, thread_name_prefix="cascade-query") as pool:
            plans = list(pool.map(lambda t: self._plan_deletes(t, now), triggers))
        owner: dict[Identity, int] = {}
        writes: list[ConditionalWrite] = []
        changes: dict[Identity, _Change] = {}
        stats = CascadeStats()
        for i, plan in enumerate(plans):
            if plan is None:
                return None
            found, records, depth = plan
            for ident in found:
                if owner.setdefault(ident, i) != i:
                    return None
            version = triggers[i][3]
            writes += records
            for change in found.values():
                writes += self._writes(change, version, now)
            changes.update(found)
            stats.records += len(records)
            stats.depth = max(stats.depth, depth)
        self._apply(writes, changes, stats)
        log.debug("cascade_applied", cascade={"triggers": len(triggers),
                                               "versions": [t[3] for t in triggers[:5]]},
                  applied=stats.applied, replayed=stats.replayed, depth=stats.depth)
        return stats

    def _plan_deletes(self, trigger: Trigger,
                      now: float) -> tuple[dict[Identity, _Change], list[ConditionalWrite], int] | None:
        """Every level of one delete's cascade, found but not written; None when one is not a delete."""
        table, before, _, version = trigger
        found: dict[Identity, _Change] = {}
        records: list[ConditionalWrite] = []
        visited = self._start_visited(table, before)
        frontier = [_Change(table, before, None)]
        depth = 0
        for depth in range(1, MAX_DEPTH + 1):
            changes, level_records = self._level(frontier, version, now, visited)
            records += level_records
            if not changes:
                return found, records, depth - 1
            if any(c.after is not None for c in changes.values()):
                return None
            found.update(changes)
            visited.update(changes)
            frontier = list(changes.values())
        return None  # as deep as InnoDB goes: the one-by-one path says so

    # ----------------------------------------------------------------- snapshot rows

    def snapshot_rows(self, events: list[ChangeEvent], now: float) -> CascadeStats:
        """Snapshot rows (applied) that a cascade after their version reached: replace them with
        what the cascade made of them, and cascade that further."""
        stats = CascadeStats()
        for event in events:
            if event.op != "r" or event.after is None or not self.graph.of_child(event.source):
                continue
            row: Row | None = event.after
            written = event.version
            for _ in range(MAX_DEPTH):
                if row is None:
                    break
                found = self._first_record(event.source, row, written)
                if found is None:
                    break
                action, version = found
                new = cascaded_row(action, row)
                change = _Change(event.source, row, new, [action.kind])
                outcomes = self._apply(self._writes(change, version, now, below=written + 1),
                                       {("", 0): change}, stats)
                if "applied" not in outcomes:
                    break  # a stream change at or after the snapshot row is there: it decides
                log.info("cascade_snapshot_row", table=event.source, cascade={"version": version,
                         "action": action.kind, "snapshot_version": event.version})
                sub = self.cascade(event.source, row, new, version, now)
                stats.applied += sub.applied
                stats.replayed += sub.replayed
                row, written = new, version
        return stats

    def _first_record(self, table: str, row: Row, after: int) -> tuple[CascadeAction, int] | None:
        """The earliest cascade after version ``after`` that reached ``row`` through any foreign key."""
        best: tuple[CascadeAction, int] | None = None
        for fk in self.graph.of_child(table):
            values = tuple(row.get(c) for c in fk.columns)
            if any(v is None for v in values):
                continue
            params = {"TableName": self.records_table, "KeyConditionExpression": "#id = :id AND #v > :v",
                      "ExpressionAttributeNames": {"#id": "id", "#v": "v"},
                      "ExpressionAttributeValues": {":id": {"S": record_id(fk, values)},
                                                    ":v": {"N": str(after)}},
                      "Limit": 1, "ConsistentRead": True}
            page = self._call("reading cascade records", self.records_table,
                              lambda p=params: self.client.query(**p))  # type: ignore[misc]
            items = page.get("Items") or []
            if not items:
                continue
            version = int(items[0]["v"]["N"])
            if best is None or version < best[1]:
                new = tuple(decode_value(v) for v in orjson.loads(items[0]["new"]["S"]))
                best = (CascadeAction(fk, items[0]["action"]["S"], values, new), version)
        return best

    # ----------------------------------------------------------------- requests

    def _call(self, what: str, table: str, request: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        attempt = 0
        while True:
            try:
                with dynamo_errors(what, table):
                    return request()
            except TargetUnavailable as exc:
                delay = self.backoff.delay(attempt)
                if attempt in (0, 4) or attempt % 20 == 19:
                    log.warning("dynamodb_read_retry", what=what, table=table, error=exc.code or str(exc),
                                attempt=attempt + 1, delay_s=round(delay, 3))
                self._sleep(delay)
                attempt += 1


def _at(item: dict[str, Any], version: int) -> bool:
    """Whether a found child is the cascade's to change: live at a lower version, or written at
    this version (a replay after a crash, tombstones included)."""
    stored = int(item[VERSION_ATTR]["N"])
    if stored > version:  # changed after the cascade (a leaf table goes on): that change decides
        return False
    return not (is_tombstone(item) and stored < version)  # not gone before the cascade


def _tombstone(mapper: TableMapper, table: str, row: Row, version: int, expires: int) -> ConditionalWrite:
    """A cascade's delete: a tombstone that keeps the row's attributes (see the module docstring)."""
    item = mapper.to_item(row, metadata=metadata(version, ORIGIN_CDC, mapper.table))
    item[DELETED_ATTR] = {"BOOL": True}
    item[TTL_ATTR] = {"N": str(int(expires))}
    return ConditionalWrite(table, mapper.key(row), item, version, tombstone=True)


def _with_tombstones(params: dict[str, Any]) -> dict[str, Any]:
    """A GSI query of :func:`dynamodb_query_params` without its tombstone filter."""
    filters = [f for f in params["FilterExpression"].split(" AND ") if "#deleted" not in f]
    del params["ExpressionAttributeNames"]["#deleted"]
    if filters:
        params["FilterExpression"] = " AND ".join(filters)
    else:
        del params["FilterExpression"]
    return params


def _identity(key: Mapping[str, Any]) -> Any:
    return tuple(sorted((name, *next(iter(av.items()))) for name, av in key.items()))

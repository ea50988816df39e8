"""A DynamoDB with the queries the cascade executor makes (GSI equality, records after a version)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from consumers.writer.applier import WriteResult
from consumers.writer.cascade.executor import CascadeExecutor
from consumers.writer.cascade.setup import with_cascade_indexes
from replicator.mapping import ConditionalWrite, TableMapper, is_tombstone, upsert
from replicator.mapping.foreign_keys import CascadeGraph, ForeignKey
from replicator.settings import Settings, load_settings


class FakeDynamo:
    def __init__(self) -> None:
        self.items: dict[Any, dict[str, Any]] = {}
        self.queries = 0
        # What the GSIs show, when they lag behind the tables (AWS): identity -> item; None: no lag.
        self.index_view: dict[Any, dict[str, Any]] | None = None

    def get_item(self, **p: Any) -> dict[str, Any]:
        ident = ConditionalWrite(p["TableName"], p["Key"], {}, 0, False).identity
        item = self.items.get(ident)
        return {"Item": copy.deepcopy(item)} if item is not None else {}

    def put(self, w: ConditionalWrite) -> bool:
        below = int(w.put_item_params()["ExpressionAttributeValues"][":v"]["N"])
        stored = self.items.get(w.identity)
        if stored is not None and int(stored["_version"]["N"]) >= below:
            return False
        self.items[w.identity] = copy.deepcopy(w.item)
        return True

    def query(self, **p: Any) -> dict[str, Any]:
        self.queries += 1
        names, values = p["ExpressionAttributeNames"], p["ExpressionAttributeValues"]
        source = self.items if "IndexName" not in p or self.index_view is None else self.index_view
        rows = [item for (table, _), item in source.items() if table == p["TableName"]]
        if "IndexName" not in p:  # the records table: "#id = :id AND #v > :v", ascending, Limit
            rows = sorted((r for r in rows if r["id"] == values[":id"]
                           and int(r["v"]["N"]) > int(values[":v"]["N"])), key=lambda r: int(r["v"]["N"]))
            return {"Items": rows[:p.get("Limit", len(rows))]}
        for cond in p["KeyConditionExpression"].split(" AND "):
            name, value = (s.strip() for s in cond.split("="))
            rows = [r for r in rows if r.get(names[name]) == values[value]]
        hide = "#deleted" in names  # the tombstone filter of an access pattern's query
        if "#table" in names:  # and its filter on the item's source table (shared tables)
            rows = [r for r in rows if r.get(names["#table"]) == values[":table"]]
        return {"Items": [copy.deepcopy(r) for r in rows if not (hide and is_tombstone(r))]}


class FakeApplier:
    mode = "fake"
    concurrency = 1
    pending = 0

    def __init__(self, db: FakeDynamo) -> None:
        self.db = db
        self.calls: list[list[ConditionalWrite]] = []
        self.crash_after = -1  # writes to take before a crash (kill -9): -1 never

    def start(self) -> None: ...
    def close(self) -> None: ...

    def apply(self, writes: list[ConditionalWrite]) -> list[WriteResult]:
        self.calls.append(list(writes))
        results = []
        for w in writes:
            if self.crash_after == 0:
                raise KeyboardInterrupt("killed")
            self.crash_after -= 1
            results.append(WriteResult(w, "applied" if self.db.put(w) else "replayed"))
        return results


INT = "int(11)"


def fk(child: str, parent: str, cols: tuple[str, ...] = ("pid",), pcols: tuple[str, ...] = ("id",),
       on_delete: str = "CASCADE", on_update: str = "RESTRICT", name: str = "") -> ForeignKey:
    return ForeignKey(name or f"fk_{child}", f"d.{child}", cols, f"d.{parent}", pcols,
                      on_delete, on_update)  # type: ignore[arg-type]


class World:
    """Tables, their mappers, a DynamoDB and an executor over them."""

    def __init__(self, tables: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]],
                 fks: list[ForeignKey]) -> None:
        self.graph = CascadeGraph(fks, {f"d.{t}" for t in tables})
        settings: Settings = with_cascade_indexes(
            load_settings(tables=[{"source": f"d.{t}"} for t in tables]), self.graph)
        self.mappers = {t.source: TableMapper(t, tuple((c, INT) for c in tables[t.table][0]),
                                              tables[t.table][1]) for t in settings.tables}
        self.targets = {s: s.split(".")[1] for s in self.mappers}
        self.db = FakeDynamo()
        self.applied: list[tuple[str, str, int]] = []
        self.executor = CascadeExecutor(self.graph, self.mappers, self.targets, self.db,
                                        FakeApplier(self.db), "records", 3600,
                                        on_applied=lambda t, a, n: self.applied.append((t, a, n)))

    def put(self, table: str, row: dict[str, Any], version: int) -> None:
        self.db.put(upsert(self.mappers[f"d.{table}"], table, row, version, "cdc"))

    def row(self, table: str, key: dict[str, Any]) -> tuple[dict[str, Any], int] | None:
        mapper = self.mappers[f"d.{table}"]
        ident = ConditionalWrite(table, mapper.key(key), {}, 0, False).identity
        item = self.db.items.get(ident)
        if item is None or is_tombstone(item):
            return None
        return mapper.to_row(item), int(item["_version"]["N"])

    def version(self, table: str, key: dict[str, Any]) -> int:
        mapper = self.mappers[f"d.{table}"]
        ident = ConditionalWrite(table, mapper.key(key), {}, 0, False).identity
        return int(self.db.items[ident]["_version"]["N"])

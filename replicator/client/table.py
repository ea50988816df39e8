"""One mapped table as the application sees it: reads and writes routed by the phase snapshot.

========  ====================================  =======================================
phase     reads                                 writes
========  ====================================  =======================================
1, 2      MySQL                                 MySQL (the pipeline carries them on)
3         MySQL and DynamoDB concurrently;      MySQL
          MySQL's answer, the two compared
4         DynamoDB (read-your-writes; MySQL     MySQL
          when DynamoDB fails: never an error)
5         DynamoDB                              DynamoDB, version-conditional, ``_origin=app``
========  ====================================  =======================================

Rows go in and come out in PyMySQL's shape (:mod:`replicator.mapping.pytypes`) whichever store
served them; every key, item and row goes through the table's :class:`TableMapper`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from replicator.client.mysql_side import (
    sql_param,
    where_key,
)
from replicator.client.transactions import retry_conflicts
from replicator.control import names
from replicator.errors import (
    KeyShapeError,
    MappingError,
    ReplicatorError,
)
from replicator.events import Row
from replicator.mapping import DELETED_ATTR, PK_ATTR, SK_ATTR, TableMapper, is_tombstone
from replicator.mapping.conditional import owned_by
from replicator.mapping.embedded import EmbeddedMapper, live_entries
from replicator.mapping.indexes import IndexMapping, dynamodb_query_params, mysql_condition, quote
from replicator.mapping.mapper import template_text
from replicator.mapping.names import TABLE_ATTR
from replicator.mapping.pytypes import from_python, to_python
from replicator.mapping.templates import template_fields
from replicator.settings import CollectionSpec

if TYPE_CHECKING:
    from replicator.client.client import Client

log = structlog.get_logger("replicator.client")

Key = Mapping[str, Any]
T = TypeVar("T")
MAX_PATCHED_KEYS = 100  # own recent writes patched into a phase-4 query; beyond, MySQL answers
_CONFLICT_RETRIES = 5


class Table:
    """``client.table("db.table")``: get, get_many, query, insert, update, delete."""

    def __init__(self, client: Client, mapper: TableMapper, target: str,
                 embedded: EmbeddedMapper | None = None) -> None:
        self._c = client
        self.mapper = mapper
        self.source = mapper.table
        self.target = target  # the DynamoDB table, prefix included
        self._key_columns = mapper.key_columns
        #: An embedded table (docs/model.md): its rows are entries of its parent's items.
        self.embedded = embedded
        #: An embedded table's parent table (set with ``children``).
        self.parent: Table | None = None
        #: The tables embedded in this one, by the map attribute that holds them (``include=``).
        self.children: dict[str, Table] = {}
        # A key names the row by its primary key; it may also give the other columns the row's
        # DynamoDB key is made of (a key template's, or an embedded row's parent columns, embed.on),
        # without which its item cannot be found in DynamoDB (phase 4 then reads MySQL).
        item_columns = tuple(embedded.spec.on) if embedded else mapper.key_columns
        self._key_extra: tuple[str, ...] = tuple(c for c in dict.fromkeys(item_columns)
                                                 if c not in mapper.primary_key)
        self._key_required: tuple[str, ...] = (*mapper.primary_key, *self._key_extra)

    # ----------------------------------------------------------------- keys and rows

    def key_of(self, key: Key) -> dict[str, Any]:
        """The key as given, checked: the primary-key columns, and optionally the other columns of
        the row's DynamoDB key (its key template's; an embedded table's ``embed.on``)."""
        pk = list(self.mapper.primary_key)
        optional = f" (and optionally {list(self._key_extra)})" if self._key_extra else ""
        if not isinstance(key, Mapping):
            raise KeyShapeError(f"{self.source}: a key is a dict of the primary-key columns {pk}{optional}, "
                                f"got {type(key).__name__}")
        missing = [c for c in pk if c not in key]
        extra = [c for c in key if c not in self._key_required]
        if missing or extra:
            raise KeyShapeError(
                f"{self.source}: the key must hold the primary-key columns {pk}{optional}"
                + (f"; missing {missing}" if missing else "")
                + (f"; not key columns {extra}" if extra else ""))
        return {c: key[c] for c in self._key_required if c in key}

    @property
    def key_extra(self) -> tuple[str, ...]:
        """The columns a key may give besides the primary key (see :meth:`key_of`)."""
        return self._key_extra

    def values(self, row: Mapping[str, Any]) -> Row:
        """Application values -> the event value model (the mapping's input)."""
        unknown = [c for c in row if c not in self.mapper.types]
        if unknown:
            raise KeyShapeError(f"{self.source} has no column(s) {unknown}; its columns are "
                                f"{list(self.mapper.types)}")
        out: Row = {}
        for column, value in row.items():
            try:
                out[column] = from_python(self.mapper.types[column], value)
            except MappingError as exc:
                raise type(exc)(f"{self.source}.{column}: {exc}", table=self.source,
                                reason=exc.reason) from exc
        return out

    def shape(self, row: Row | None) -> dict[str, Any] | None:
        """An event-model row -> the application's row (PyMySQL's types)."""
        if row is None:
            return None
        mode = self._c.settings.client.json_columns
        return {c: to_python(self.mapper.types[c], v, mode) for c, v in row.items()}

    def key_text(self, key: Key) -> str:
        return self.mapper.key_text(self.values(key))

    def dynamo_key(self, key: Key) -> dict[str, Any]:
        """The DynamoDB key of the item that holds the row (an embedded row's: its parent's)."""
        try:
            if self.embedded is not None:
                return self.embedded.item_key(self.values(key))
            return self.mapper.key(self.values(key))
        except MappingError as exc:
            raise KeyShapeError(
                f"{self.source}: the DynamoDB key of its item cannot be built from the key given ({exc}); "
                f"give the key's other columns {list(self._key_extra)} too, or key the table by its "
                f"primary key") from exc

    # ----------------------------------------------------------------- reads

    def get(self, key: Key, include: Sequence[str] = ()) -> dict[str, Any] | None:
        """The row with this primary key, or None. ``include``: embedded tables (their ``embed.as``)
        to return with it, each a list of rows in primary-key order under that name: SELECTs on
        MySQL, the one item on DynamoDB."""
        return self.get_many([key], include)[0]

    def get_many(self, keys: Sequence[Key], include: Sequence[str] = ()) -> list[dict[str, Any] | None]:
        """The rows for ``keys``, in order (None where there is none); ``include`` as in :meth:`get`."""
        state = self._c.phase
        checked = [self.key_of(k) for k in keys]
        if not checked:
            return []
        n = state.phase
        if include:
            names = self._included(include)
            rows, kids = self._aggregates(n, checked, names)
            return [None if r is None else {**(self.shape(r) or {}), **{
                name: [self.children[name].shape(c) for c in k[name]] for name in names}}
                for r, k in zip(rows, kids, strict=True)]
        if n <= 2:
            rows = self._mysql_rows(checked)
        elif n == 3:
            rows = self._dual_rows(checked)
        elif n == 4:
            rows = self._phase4_rows(checked)
        else:
            rows = self._dynamo_rows(checked, count=True)
        return [self.shape(r) for r in rows]

    def query(self, pattern: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The rows of a declared access pattern (``tables[].indexes``), in the pattern's order:
        by its sort-key column, then by primary key, identical from either store."""
        collection = next((c for c in self.mapper.mapping.collections if c.name == pattern), None)
        if collection is not None:
            return self._collection(collection, values)
        index = self.mapper.index(pattern)
        given = self.values(values) if isinstance(values, Mapping) else values
        state = self._c.phase
        n = state.phase
        if n <= 2:
            rows = self._mysql_query(index, given)
        elif n == 3:
            rows = self._dual_query(index, given)
        elif n == 4:
            rows = self._phase4_query(index, given)
        else:
            rows = self._dynamo_query(index, given, count=True)
        return [r for r in (self.shape(x) for x in rows) if r is not None]

    # MySQL

    def _mysql_rows(self, keys: Sequence[dict[str, Any]]) -> list[Row | None]:
        found: dict[str, Row] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            where = " OR ".join(f"({where_key(list(k))})" for k in chunk)
            params = [sql_param(self.mapper, c, v) for k in chunk for c, v in k.items()]
            t0 = time.perf_counter()
            for row in self._c.mysql.select(self.mapper, where, params):
                found[self.mapper.key_text(row)] = row
            self._c.metrics.read_seconds.labels("mysql", "get").observe(time.perf_counter() - t0)
        return [found.get(self.key_text(k)) for k in keys]

    def _mysql_query(self, index: IndexMapping, values: Row) -> list[Row]:
        where, order, params = mysql_condition(index, values)
        t0 = time.perf_counter()
        rows = self._c.mysql.select(self.mapper, where, params, order)
        self._c.metrics.read_seconds.labels("mysql", "query").observe(time.perf_counter() - t0)
        rows.sort(key=index.sort_key)  # the pattern's order, whatever the column's collation
        return rows

    # DynamoDB

    def _dynamo_rows(self, keys: Sequence[dict[str, Any]], *, count: bool) -> list[Row | None]:
        if self.embedded is not None:
            return self._entry_rows(keys, count=count)
        dkeys = [self.dynamo_key(k) for k in keys]

        def read() -> list[dict[str, Any] | None]:
            if len(dkeys) == 1:
                return [self._c.dynamo.get_live(self.target, dkeys[0])]
            return self._c.dynamo.batch_get(self.target, dkeys, time.monotonic() + self._budget())

        items = self._measured("get", read, count=count)
        return [None if i is None else self.mapper.to_row(i) for i in items]

    def _items(self, keys: Sequence[dict[str, Any]], *, count: bool) -> list[dict[str, Any] | None]:
        """The items holding ``keys``' rows, tombstones and item shells included."""
        dkeys = [self.dynamo_key(k) for k in keys]
        deadline = time.monotonic() + self._budget()
        return self._measured("get", lambda: self._c.dynamo.batch_get(self.target, dkeys, deadline,
                                                                       tombstones=True), count=count)

    def _entry_rows(self, keys: Sequence[dict[str, Any]], *, count: bool) -> list[Row | None]:
        """An embedded table's rows: the entries of their parents' items."""
        assert self.embedded is not None
        out: list[Row | None] = []
        for key, item in zip(keys, self._items(keys, count=count), strict=True):
            entry = None if item is None else live_entries(item, self.embedded.attribute).get(
                self.embedded.entry_name(self.values(key)))
            out.append(None if entry is None else self.embedded.to_row(entry))
        return out

    # aggregates: a row with its embedded children

    def _included(self, include: Sequence[str]) -> tuple[str, ...]:
        if isinstance(include, str):
            include = [include]
        unknown = [n for n in include if n not in self.children]
        if unknown:
            raise KeyShapeError(f"{self.source}: include names {unknown}, not tables embedded in it; "
                                f"embedded in it: {sorted(self.children) or 'none'} (tables[].embed.as)")
        return tuple(dict.fromkeys(include))

    def _aggregates(self, n: int, keys: Sequence[dict[str, Any]],
                    names: tuple[str, ...]) -> tuple[list[Row | None], list[dict[str, list[Row]]]]:
        if n <= 2:
            return self._mysql_aggregates(keys, names)
        if n == 3:
            future = self._c.submit_dynamo(lambda: self._dynamo_aggregates(keys, names, count=False))
            rows, kids = self._mysql_aggregates(keys, names)
            dynamo = self._await(future)
            if dynamo is not None and self._c.validator.sampled():
                self._compare_aggregates(keys, names, (rows, kids), dynamo)
            return rows, kids
        if n == 4:
            sources = [self.source, *(self.children[name].source for name in names)]
            waits = [g for g in (self._c.recent.pending(s) for s in sources) if g]
            if waits and not self._c.wait_applied(self.source, waits):
                self._c.metrics.fallbacks.labels("read_your_writes").inc()
                return self._mysql_aggregates(keys, names)
            try:
                return self._dynamo_aggregates(keys, names, count=True)
            except ReplicatorError:
                self._c.metrics.fallbacks.labels("dynamodb_error").inc()
                return self._mysql_aggregates(keys, names)
        return self._dynamo_aggregates(keys, names, count=True)

    def _mysql_aggregates(self, keys: Sequence[dict[str, Any]],
                          names: tuple[str, ...]) -> tuple[list[Row | None], list[dict[str, list[Row]]]]:
        rows = self._mysql_rows(keys)
        kids: list[dict[str, list[Row]]] = []
        for row in rows:
            found: dict[str, list[Row]] = {}
            for name in names:
                child = self.children[name]
                assert child.embedded is not None
                if row is None:
                    found[name] = []
                    continue
                on = child.embedded.spec.on
                where = " AND ".join(f"{quote(c)} = %s" for c in on)
                params = [sql_param(child.mapper, c, to_python(self.mapper.types[p], row.get(p)))
                          for c, p in on.items()]
                t0 = time.perf_counter()
                found[name] = sorted(self._c.mysql.select(child.mapper, where, params), key=child.pk_order)
                self._c.metrics.read_seconds.labels("mysql", "get").observe(time.perf_counter() - t0)
            kids.append(found)
        return rows, kids

    def _dynamo_aggregates(self, keys: Sequence[dict[str, Any]], names: tuple[str, ...], *,
                           count: bool) -> tuple[list[Row | None], list[dict[str, list[Row]]]]:
        rows: list[Row | None] = []
        kids: list[dict[str, list[Row]]] = []
        for item in self._items(keys, count=count):
            live = item is not None and not is_tombstone(item)
            rows.append(self.mapper.to_row(item) if live and item is not None else None)
            found: dict[str, list[Row]] = {}
            for name in names:
                child = self.children[name]
                assert child.embedded is not None
                entries = live_entries(item, name).values() if live and item is not None else ()
                found[name] = sorted((child.embedded.to_row(e) for e in entries), key=child.pk_order)
            kids.append(found)
        return rows, kids

    def _compare_aggregates(self, keys: Sequence[dict[str, Any]], names: tuple[str, ...],
                            mysql: tuple[list[Row | None], list[dict[str, list[Row]]]],
                            dynamo: tuple[list[Row | None], list[dict[str, list[Row]]]]) -> None:
        """Phase 3: the parent rows and every child row, each compared like a read of its own."""
        for i, key in enumerate(keys):
            self._c.validator.check(self.source, self.key_text(key), mysql[0][i], dynamo[0][i],
                                    sources=[self.source], key_columns=self._key_columns,
                                    fetch=self._refetch(key))
            for name in names:
                child = self.children[name]
                by_m = {child.mapper.key_text(r): r for r in mysql[1][i][name]}
                by_d = {child.mapper.key_text(r): r for r in dynamo[1][i][name]}
                for k in sorted(by_m.keys() | by_d.keys()):
                    row = by_m.get(k) or by_d[k]
                    ckey = {c: to_python(child.mapper.types[c], row.get(c)) for c in child._key_required}
                    self._c.validator.check(child.source, k, by_m.get(k), by_d.get(k), sources=[child.source],
                                            key_columns=child._key_columns, fetch=child._refetch(ckey))

    # collections: one partition of a shared table

    def _collection(self, spec: CollectionSpec, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        """A declared collection (``tables[].collections``): this table's rows with the given values
        of its key.pk columns, each with the member tables' rows that share the partition, under
        the member's table name, in DynamoDB's sort-key order: SELECTs on MySQL, one Query on
        DynamoDB."""
        pk_template = self.mapper.mapping.key.pk or ""
        needed = sorted(set(template_fields(pk_template)))
        if not isinstance(values, Mapping) or sorted(values) != needed:
            got = sorted(values) if isinstance(values, Mapping) else values
            raise KeyShapeError(f"{self.source} collection {spec.name!r} is queried by the columns of its "
                                f"key.pk {pk_template!r}: {needed}; got {got!r}")
        given = self.values(values)
        members = [(self._c.table(m), on) for m, on in spec.members.items()]
        tables = [self, *(t for t, _ in members)]
        n = self._c.phase.phase
        if n <= 2:
            found = self._mysql_collection(given, members)
        elif n == 3:
            future = self._c.submit_dynamo(lambda: self._dynamo_collection(given, members, count=False))
            found = self._mysql_collection(given, members)
            dynamo = self._await(future)
            if dynamo is not None and self._c.validator.sampled():
                for table, m_rows, d_rows in zip(tables, found, dynamo, strict=True):
                    table._compare_rows(m_rows, d_rows)
        elif n == 4:
            waits = [g for g in (self._c.recent.pending(t.source) for t in tables) if g]
            if waits and not self._c.wait_applied(self.source, waits):
                self._c.metrics.fallbacks.labels("read_your_writes").inc()
                found = self._mysql_collection(given, members)
            else:
                try:
                    found = self._dynamo_collection(given, members, count=True)
                except ReplicatorError:
                    self._c.metrics.fallbacks.labels("dynamodb_error").inc()
                    found = self._mysql_collection(given, members)
        else:
            found = self._dynamo_collection(given, members, count=True)
        owners, *member_rows = found
        out = []
        for owner in owners:
            shaped = self.shape(owner) or {}
            for (table, _), rows in zip(members, member_rows, strict=True):
                shaped[table.mapper.mapping.table] = [table.shape(r) for r in rows]
            out.append(shaped)
        return out

    def sk_order(self, row: Row) -> str:
        """Where a row sorts in its partition: its rendered sort key (DynamoDB orders by its bytes)."""
        key = self.mapper.key(row)
        return next((av["S"] for name, av in key.items() if name == SK_ATTR), "")

    def _mysql_collection(self, given: Row, members: list[tuple[Table, dict[str, str]]]) -> list[list[Row]]:
        t0 = time.perf_counter()
        where = " AND ".join(f"{quote(c)} = %s" for c in given)
        owners = self._c.mysql.select(self.mapper, where, [sql_param(self.mapper, c, to_python(
            self.mapper.types[c], v)) for c, v in given.items()])
        found = [sorted(owners, key=self.sk_order)]
        for table, on in members:
            where = " AND ".join(f"{quote(c)} = %s" for c in on)
            params = [sql_param(table.mapper, c, to_python(self.mapper.types[o], given[o]))
                      for c, o in on.items()]
            found.append(sorted(self._c.mysql.select(table.mapper, where, params), key=table.sk_order))
        self._c.metrics.read_seconds.labels("mysql", "query").observe(time.perf_counter() - t0)
        return found

    def _dynamo_collection(self, given: Row, members: list[tuple[Table, dict[str, str]]], *,
                           count: bool) -> list[list[Row]]:
        partition = self.mapper.key(given)[PK_ATTR]
        params = {"TableName": self.target, "ConsistentRead": True,
                  "KeyConditionExpression": "#pk = :pk", "FilterExpression": "attribute_not_exists(#deleted)",
                  "ExpressionAttributeNames": {"#pk": PK_ATTR, "#deleted": DELETED_ATTR},
                  "ExpressionAttributeValues": {":pk": partition}}
        items = self._measured("query", lambda: self._c.dynamo.query(params), count=count)
        tables = [self, *(t for t, _ in members)]
        found: list[list[Row]] = [[] for _ in tables]
        for item in items:  # in sort-key order
            for i, table in enumerate(tables):
                if owned_by(item, table.source) and TABLE_ATTR in item:
                    found[i].append(table.mapper.to_row(item))
                    break
        return found

    def _compare_rows(self, mysql: list[Row], dynamo: list[Row]) -> None:
        """Phase 3: rows of this table from both stores, each compared like a read of its own."""
        by_m = {self.mapper.key_text(r): r for r in mysql}
        by_d = {self.mapper.key_text(r): r for r in dynamo}
        for k in sorted(by_m.keys() | by_d.keys()):
            row = by_m.get(k) or by_d[k]
            key = {c: to_python(self.mapper.types[c], row.get(c)) for c in self._key_required}
            self._c.validator.check(self.source, k, by_m.get(k), by_d.get(k), sources=[self.source],
                                    key_columns=self._key_columns, fetch=self._refetch(key))

    def pk_order(self, row: Row) -> tuple[tuple[int, Any], ...]:
        """Primary-key order, the same for rows from either store (numbers by value, others by text)."""
        return tuple((0, v) if isinstance(v, int | Decimal) and not isinstance(v, bool)
                     else (1, template_text(v) or "") for v in (row.get(c) for c in self.mapper.primary_key))

    def _dynamo_query(self, index: IndexMapping, values: Row, *, count: bool) -> list[Row]:
        params = dynamodb_query_params(self.target, index, values)
        items = self._measured("query", lambda: self._c.dynamo.query(params), count=count)
        rows = [self.mapper.to_row(i) for i in items if not is_tombstone(i)]
        rows.sort(key=index.sort_key)
        return rows

    def _measured(self, op: str, read: Callable[[], T], *, count: bool) -> T:
        """One DynamoDB read, timed; counted for the 4 -> 5 gate when ``count`` (phases 4-5; phase 3
        counts once per dual read, in :meth:`_await`)."""
        t0 = time.perf_counter()
        try:
            result = read()
        except ReplicatorError as exc:
            if count:
                self._c.dynamodb_read_failed(exc)
            raise
        self._c.metrics.read_seconds.labels("dynamodb", op).observe(time.perf_counter() - t0)
        if count:
            self._c.counters.incr(names.DYNAMODB_READ_OK, 1)
        return result

    def _budget(self) -> float:
        return self._c.settings.client.read_timeout_s

    # phase 3: both, concurrently; MySQL's answer

    def _dual_rows(self, keys: Sequence[dict[str, Any]]) -> list[Row | None]:
        future = self._c.submit_dynamo(lambda: self._dynamo_rows(keys, count=False))
        mysql = self._mysql_rows(keys)
        dynamo = self._await(future)
        if dynamo is not None and self._c.validator.sampled():
            for key, m, d in zip(keys, mysql, dynamo, strict=True):
                self._c.validator.check(
                    self.source, self.key_text(key), m, d, sources=[self.source],
                    key_columns=self._key_columns, fetch=self._refetch(key))
        return mysql

    def _refetch(self, key: dict[str, Any]) -> Callable[[], tuple[Row | None, Row | None]]:
        def fetch() -> tuple[Row | None, Row | None]:
            return self._mysql_rows([key])[0], self._dynamo_rows([key], count=False)[0]
        return fetch

    def _dual_query(self, index: IndexMapping, values: Row) -> list[Row]:
        future = self._c.submit_dynamo(lambda: self._dynamo_query(index, values, count=False))
        mysql = self._mysql_query(index, values)
        dynamo = self._await(future)
        if dynamo is not None and self._c.validator.sampled():
            by_key_m = {self.mapper.key_text(r): r for r in mysql}
            by_key_d = {self.mapper.key_text(r): r for r in dynamo}
            for k in sorted(by_key_m.keys() | by_key_d.keys()):
                key = self._pk_of(by_key_m.get(k) or by_key_d[k])
                self._c.validator.check(self.source, k, by_key_m.get(k), by_key_d.get(k),
                                        sources=[self.source], key_columns=self._key_columns,
                                        fetch=self._refetch(key))
        return mysql

    def _pk_of(self, row: Row) -> dict[str, Any]:
        return {c: to_python(self.mapper.types[c], row.get(c)) for c in self._key_required}

    def _await(self, future: Future[Any]) -> Any:
        """The DynamoDB side's result within the read budget; None (counted) when it failed."""
        try:
            result = future.result(timeout=self._budget())
        except FutureTimeout:
            future.cancel()
            self._c.dynamodb_read_failed(None)
            return None
        except ReplicatorError as exc:
            self._c.dynamodb_read_failed(exc)
            return None
        self._c.counters.incr(names.DYNAMODB_READ_OK, 1)
        return result

    # phase 4: DynamoDB, fresh for this client's own writes, MySQL when DynamoDB fails

    def _phase4_rows(self, keys: Sequence[dict[str, Any]]) -> list[Row | None]:
        waits = [g for g in (self._c.recent.pending(self.source, self.key_text(k)) for k in keys) if g]
        if waits and not self._c.wait_applied(self.source, waits):
            self._c.metrics.fallbacks.labels("read_your_writes").inc()
            return self._mysql_rows(keys)
        try:
            return self._dynamo_rows(keys, count=True)
        except ReplicatorError:
            self._c.metrics.fallbacks.labels("dynamodb_error").inc()
            return self._mysql_rows(keys)

    def _phase4_query(self, index: IndexMapping, values: Row) -> list[Row]:
        pending = self._c.recent.pending(self.source)
        if pending and not self._c.wait_applied(self.source, [pending]):
            self._c.metrics.fallbacks.labels("read_your_writes").inc()
            return self._mysql_query(index, values)
        mine = self._c.recent.keys(self.source)
        if len(mine) > MAX_PATCHED_KEYS:
            self._c.metrics.fallbacks.labels("read_your_writes").inc()
            return self._mysql_query(index, values)
        try:
            rows = self._dynamo_query(index, values, count=True)
            if mine:
                rows = self._patch(index, values, rows, mine)
        except ReplicatorError:
            self._c.metrics.fallbacks.labels("dynamodb_error").inc()
            return self._mysql_query(index, values)
        return rows

    def _patch(self, index: IndexMapping, values: Row, rows: list[Row],
               mine: list[dict[str, Any]]) -> list[Row]:
        """A GSI is eventually consistent even once the table has the write: replace this client's
        own recently written rows by their strongly consistent base-table state."""
        texts = {self.key_text(k) for k in mine}
        kept = [r for r in rows if self.mapper.key_text(r) not in texts]
        fresh = self._dynamo_rows(mine, count=False)
        kept += [r for r in fresh if r is not None and all(r.get(c) == v for c, v in values.items())]
        kept.sort(key=index.sort_key)
        return kept

    # ----------------------------------------------------------------- writes

    def insert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Insert one row; returns its primary key (with an AUTO_INCREMENT value filled in)."""
        def once() -> dict[str, Any]:
            with self._c.transaction() as tx:
                return tx.table(self.source).insert(row)
        return retry_conflicts(once)

    def update(self, key: Key, changes: Mapping[str, Any]) -> int:
        """Set ``changes`` on the row with this key; the number of rows changed (0 or 1)."""
        def once() -> int:
            with self._c.transaction() as tx:
                return tx.table(self.source).update(key, changes)
        return retry_conflicts(once)

    def delete(self, key: Key) -> int:
        """Delete the row with this key; the number of rows deleted (0 or 1)."""
        def once() -> int:
            with self._c.transaction() as tx:
                return tx.table(self.source).delete(key)
        return retry_conflicts(once)

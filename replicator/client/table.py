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
from replicator.mapping import TableMapper, is_tombstone
from replicator.mapping.indexes import IndexMapping, dynamodb_query_params, mysql_condition
from replicator.mapping.pytypes import from_python, to_python

if TYPE_CHECKING:
    from replicator.client.client import Client

log = structlog.get_logger("replicator.client")

Key = Mapping[str, Any]
T = TypeVar("T")
MAX_PATCHED_KEYS = 100  # own recent writes patched into a phase-4 query; beyond, MySQL answers
_CONFLICT_RETRIES = 5


class Table:
    """``client.table("db.table")``: get, get_many, query, insert, update, delete."""

    def __init__(self, client: Client, mapper: TableMapper, target: str) -> None:
        self._c = client
        self.mapper = mapper
        self.source = mapper.table
        self.target = target  # the DynamoDB table, prefix included
        self._key_columns = mapper.key_columns

    # ----------------------------------------------------------------- keys and rows

    def key_of(self, key: Key) -> dict[str, Any]:
        """The primary key as given, checked: exactly the primary-key columns."""
        if not isinstance(key, Mapping):
            raise KeyShapeError(f"{self.source}: a key is a dict of the primary-key columns "
                                f"{list(self.mapper.primary_key)}, got {type(key).__name__}")
        missing = [c for c in self.mapper.primary_key if c not in key]
        extra = [c for c in key if c not in self.mapper.primary_key]
        if missing or extra:
            raise KeyShapeError(
                f"{self.source}: the key must hold exactly the primary-key columns "
                f"{list(self.mapper.primary_key)}" + (f"; missing {missing}" if missing else "")
                + (f"; not key columns {extra}" if extra else ""))
        return {c: key[c] for c in self.mapper.primary_key}

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
        try:
            return self.mapper.key(self.values(key))
        except MappingError as exc:
            raise KeyShapeError(
                f"{self.source}: the DynamoDB key of tables[source={self.source}].key cannot be built from "
                f"the primary key alone ({exc}); reads by primary key from DynamoDB need a key template "
                "over primary-key columns") from exc

    # ----------------------------------------------------------------- reads

    def get(self, key: Key) -> dict[str, Any] | None:
        """The row with this primary key, or None."""
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[Key]) -> list[dict[str, Any] | None]:
        """The rows for ``keys``, in order (None where there is none)."""
        state = self._c.phase
        checked = [self.key_of(k) for k in keys]
        if not checked:
            return []
        n = state.phase
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
        pk = list(self.mapper.primary_key)
        found: dict[str, Row] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            where = " OR ".join(f"({where_key(pk)})" for _ in chunk)
            params = [sql_param(self.mapper, c, k[c]) for k in chunk for c in pk]
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
        dkeys = [self.dynamo_key(k) for k in keys]

        def read() -> list[dict[str, Any] | None]:
            if len(dkeys) == 1:
                return [self._c.dynamo.get_live(self.target, dkeys[0])]
            return self._c.dynamo.batch_get(self.target, dkeys, time.monotonic() + self._budget())

        items = self._measured("get", read, count=count)
        return [None if i is None else self.mapper.to_row(i) for i in items]

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
        return {c: to_python(self.mapper.types[c], row.get(c)) for c in self.mapper.primary_key}

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

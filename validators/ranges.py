"""MySQL side of the checksum reconciliation: key boundaries, range folds and range rows.

Every query is an index range scan over the primary key (``WHERE pk > lo AND NOT pk > hi``),
and the folds are computed by the server (:func:`validators.checksum.digest_sql`): a range of
rows costs one aggregate row on the wire. Identifiers are quoted and values are parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from replicator.adapters.mysql import Connection, connect, mysql_errors
from replicator.backfill.chunks import after_key_params, after_key_predicate
from replicator.backfill.source import sql_param
from replicator.catalog import TableShape
from replicator.events import Row, Value
from replicator.mapping.cells import converter, quote_ident, select_expr
from replicator.settings import MySQLSettings
from validators.checksum import Fold

Key = tuple[Value, ...]


def range_where(pk: Sequence[str], lo: Key | None, hi: Key | None) -> tuple[str, list[Any]]:
    """``(lo, hi]`` as a WHERE clause (empty when unbounded) and its parameters."""
    clauses: list[str] = []
    params: list[Any] = []
    if lo is not None:
        clauses.append(f"({after_key_predicate(pk)})")
        params += after_key_params([sql_param(v) for v in lo])
    if hi is not None:
        clauses.append(f"NOT ({after_key_predicate(pk)})")
        params += after_key_params([sql_param(v) for v in hi])
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


class RangeReader:
    """Reads of one MySQL server for the reconciliation; :meth:`start`/:meth:`close` its connection."""

    def __init__(self, cfg: MySQLSettings) -> None:
        self._cfg = cfg
        self._conn: Connection[Any] | None = None
        self.rows_fetched = 0  # rows sent by the server (not folds, not keys)
        self.queries = 0

    def start(self) -> None:
        self._conn = connect(self._cfg, utc=True, read_timeout_s=600)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _query(self, sql: str, params: Sequence[Any], what: str) -> list[tuple[Any, ...]]:
        if self._conn is None:
            raise RuntimeError("RangeReader used before start()")
        self.queries += 1
        with mysql_errors(what), self._conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    @staticmethod
    def _table(shape: TableShape) -> str:
        return f"{quote_ident(shape.db)}.{quote_ident(shape.table)}"

    def key_at(self, shape: TableShape, lo: Key | None, hi: Key | None, offset: int) -> Key | None:
        """The key ``offset`` rows into ``(lo, hi]`` (0: the first), None past its end."""
        where, params = range_where(shape.pk, lo, hi)
        types = {n: t for (n, _), t in zip(shape.columns, shape.types, strict=True)}
        select = ", ".join(select_expr(c, types[c]) for c in shape.pk)
        order = ", ".join(quote_ident(c) for c in shape.pk)
        sql = (f"SELECT {select} FROM {self._table(shape)}{where} ORDER BY {order} "  # noqa: S608
               f"LIMIT 1 OFFSET {int(offset)}")
        got = self._query(sql, params, f"reading a key boundary of {shape.source}")
        if not got:
            return None
        return tuple(converter(types[c])(cell) for c, cell in zip(shape.pk, got[0], strict=True))

    def boundaries(self, shape: TableShape, chunk_rows: int,
                   on_chunk: Callable[[int], None] | None = None) -> list[Key | None]:
        """Upper bounds of consecutive ranges of ``chunk_rows`` rows; the last is None (no bound)."""
        his: list[Key | None] = []
        lo: Key | None = None
        while True:
            hi = self.key_at(shape, lo, None, chunk_rows - 1)
            his.append(hi)
            if on_chunk is not None:
                on_chunk(len(his))
            if hi is None:
                return his
            lo = hi

    def fold(self, shape: TableShape, digest: str, lo: Key | None, hi: Key | None) -> Fold:
        where, params = range_where(shape.pk, lo, hi)
        sql = f"SELECT COUNT(*), BIT_XOR({digest}) FROM {self._table(shape)}{where}"  # noqa: S608
        ((count, xor),) = self._query(sql, params, f"folding a range of {shape.source}")
        return Fold(int(count), int(xor or 0))

    def rows(self, shape: TableShape, lo: Key | None, hi: Key | None, limit: int | None = None) -> list[Row]:
        """The rows of ``(lo, hi]`` in key order (values as the pipeline carries them)."""
        where, params = range_where(shape.pk, lo, hi)
        select = ", ".join(select_expr(n, t) for (n, _), t in zip(shape.columns, shape.types, strict=True))
        order = ", ".join(quote_ident(c) for c in shape.pk)
        sql = (f"SELECT {select} FROM {self._table(shape)}{where} ORDER BY {order}"  # noqa: S608
               + (f" LIMIT {int(limit)}" if limit is not None else ""))
        cells = self._query(sql, params, f"reading a range of {shape.source}")
        self.rows_fetched += len(cells)
        names = [n for n, _ in shape.columns]
        convert = [converter(t) for t in shape.types]
        return [{n: f(c) for n, f, c in zip(names, convert, r, strict=True)} for r in cells]

"""MySQL adapter of the backfill: table shapes, and chunks read with their binlog position.

The position a chunk's rows are versioned with must split the binlog exactly where the
chunk's snapshot does: every change visible in the chunk before it, every other change
after it. Reading ``SHOW MASTER STATUS`` before the SELECT is not enough: with two-phase
commit a transaction is written to the binlog before InnoDB makes it visible, so a change
can sit before the head that was read and still be missing from the snapshot; its stream
event would then lose to the older snapshot row. MariaDB reports the exact split of a
consistent snapshot (``binlog_snapshot_file`` / ``binlog_snapshot_position`` inside
``START TRANSACTION WITH CONSISTENT SNAPSHOT``), and that is what is used there. On MySQL,
which has no such status, the head is read before the snapshot starts and the residual
window is documented (README, backfill section).

The version generation (docs/design.md) is read in the same snapshot: the fence row
(``cutover.fence_table``, :mod:`replicator.fence`) as the chunk's rows see it, so the rows carry
the MySQL generation of the state they were written in (0 when the table does not exist).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from replicator.adapters.mysql import Connection, connect, mysql_errors
from replicator.backfill.chunks import after_key_params, chunk_query, keys_query
from replicator.catalog import TableShape, read_table_shape
from replicator.errors import (
    ReplicatorError,
    SourceConfigError,
    SourceUnavailable,
    StatementRejected,
    TableVanishedError,
)
from replicator.events import Row, Temporal, Value
from replicator.fence import mysql_generation, read_fence
from replicator.mapping.cells import converter, quote_ident, select_expr
from replicator.mapping.foreign_keys import ForeignKey, parse_foreign_keys
from replicator.settings import MySQLSettings


@dataclass(frozen=True)
class Chunk:
    binlog_file: str
    binlog_offset: int
    rows: list[Row]
    query_s: float
    generation: int = 0  # the fence row's MySQL generation in the chunk's snapshot


def sql_param(value: Value) -> Any:
    """A primary-key value from the cursor, as a query parameter."""
    if isinstance(value, Temporal):
        return value.text.rstrip("Z").replace("T", " ")
    return value



class SnapshotSource:
    """Reads table shapes and consistent chunks. No I/O until :meth:`start`.

    ``fence_table``: read the fence row in each chunk's snapshot (the backfill); None: every
    chunk has generation 0 (readers that version nothing, such as the reconciliation).
    """

    _TABLE_DEF_CHANGED = 1412  # a table created after the snapshot began: retry with a new one

    def __init__(self, cfg: MySQLSettings, *, fence_table: str | None = None) -> None:
        self._cfg = cfg
        self._fence_table = fence_table
        self._conn: Connection[Any] | None = None
        self.is_mariadb = False
        # Per table shape: the SELECT list and cell converters, built once rather than per chunk.
        self._plans: dict[TableShape, tuple[list[str], list[Callable[[Any], Value]]]] = {}

    def start(self) -> None:
        self._conn = connect(self._cfg, utc=True)
        self.is_mariadb = "mariadb" in str(self._query("SELECT VERSION()")[0][0]).lower()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> SnapshotSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _live(self) -> Connection[Any]:
        """The connection, opened again when the server dropped it (a restart, a killed session).

        PyMySQL does not reconnect by itself: without this, every read after a lost connection
        failed the same way (``(0, '')``) and a backfill retrying its chunk never got past it
        (found by the fault campaign, a MariaDB restart under ``make chaos``).
        """
        if self._conn is None:
            raise RuntimeError("SnapshotSource used before start()")
        if not self._conn.open:
            self._conn = connect(self._cfg, utc=True)
        return self._conn

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with mysql_errors("reading"), self._live().cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())

    # ----------------------------------------------------------------- shapes

    def table_shape(self, db: str, table: str) -> TableShape:
        with mysql_errors("reading the table's shape"), self._live().cursor() as cur:
            shape = read_table_shape(cur, db, table)
        if shape is None:
            raise TableVanishedError(f"{db}.{table}: the table does not exist (dropped or renamed?); "
                                     "fix tables[] in the configuration or recreate it")
        if not shape.pk:
            raise SourceConfigError(
                f"{db}.{table} has no primary key: rows cannot be keyed, versioned or chunked. "
                "Add a primary key (or remove the table from tables[]) and run the backfill again")
        return shape

    def foreign_keys(self, db: str, table: str) -> list[ForeignKey]:
        """The table's foreign keys (``SHOW CREATE TABLE``: the SELECT grant is enough)."""
        rows = self._query(f"SHOW CREATE TABLE {quote_ident(db)}.{quote_ident(table)}")
        return parse_foreign_keys(db, table, str(rows[0][1])) if rows else []

    def estimate_rows(self, db: str, table: str) -> int:
        rows = self._query("SELECT TABLE_ROWS FROM information_schema.TABLES "
                           "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (db, table))
        return int(rows[0][0] or 0) if rows else 0

    def replication_lag_s(self) -> float | None:
        """Seconds_Behind_Master when this server is itself a replica, else None."""
        try:
            with mysql_errors("reading the replica status"), self._live().cursor() as cur:
                cur.execute("SHOW SLAVE STATUS")
                row = cur.fetchone()
                names = [d[0] for d in cur.description or ()]
        except ReplicatorError:
            return None
        lag = dict(zip(names, row, strict=False)).get("Seconds_Behind_Master") if row else None
        return None if lag is None else float(lag)

    # ----------------------------------------------------------------- chunks

    def head(self) -> tuple[str, int]:
        """The binlog position the server is writing at now (file, offset)."""
        return self._head()

    def _head(self) -> tuple[str, int]:
        try:
            row = self._query("SHOW MASTER STATUS")
        except StatementRejected:  # MySQL 8.4 renamed it
            row = self._query("SHOW BINARY LOG STATUS")
        if not row:
            raise SourceConfigError("the server has no binary log (log_bin is OFF): enable it; "
                                    "the backfill versions rows by binlog position")
        return str(row[0][0]), int(row[0][1])

    def _plan(self, shape: TableShape) -> tuple[list[str], list[Callable[[Any], Value]]]:
        if shape not in self._plans:
            self._plans[shape] = (
                [select_expr(n, t) for (n, _), t in zip(shape.columns, shape.types, strict=True)],
                [converter(t) for t in shape.types],
            )
        return self._plans[shape]

    def read_chunk(self, shape: TableShape, cursor: Sequence[Value] | None, limit: int) -> Chunk:
        """The next ``limit`` rows after ``cursor`` from one consistent snapshot, with its position."""
        select_list, _ = self._plan(shape)
        sql = chunk_query(shape.db, shape.table, select_list, shape.pk, after=cursor is not None, limit=limit)
        params = after_key_params([sql_param(v) for v in cursor]) if cursor is not None else []
        return self._snapshot(shape, sql, params)

    def read_keys(self, shape: TableShape, keys: Sequence[Sequence[Value]]) -> Chunk:
        """The rows of ``keys`` (primary-key values in ``shape.pk`` order) that exist, from one
        consistent snapshot, with its position: every change before it is visible in the rows."""
        select_list, _ = self._plan(shape)
        sql = keys_query(shape.db, shape.table, select_list, shape.pk, len(keys))
        params = [sql_param(v) for key in keys for v in key]
        return self._snapshot(shape, sql, params)

    def _snapshot(self, shape: TableShape, sql: str, params: Sequence[Any]) -> Chunk:
        conn = self._live()
        _, convert = self._plan(shape)
        head = None if self.is_mariadb else self._head()
        t0 = time.monotonic()
        with mysql_errors(f"reading a chunk of {shape.source}"), conn.cursor() as cur:
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            try:
                if head is None:
                    cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
                    status = {str(k).lower(): str(v) for k, v in cur.fetchall()}
                    head = (status["binlog_snapshot_file"], int(status["binlog_snapshot_position"]))
                generation = self._generation(cur)
                try:
                    with mysql_errors(f"reading a chunk of {shape.source}"):
                        cur.execute(sql, params)
                except StatementRejected as exc:
                    if exc.code == 1146:
                        raise TableVanishedError(
                            f"{shape.source} disappeared during the backfill (dropped or renamed): "
                            "its copy is incomplete; recreate it or remove it from tables[] and rerun"
                        ) from exc
                    raise
                cells = cur.fetchall()
            finally:
                cur.execute("COMMIT")
        query_s = time.monotonic() - t0
        names = [n for n, _ in shape.columns]
        rows = [{n: f(c) for n, f, c in zip(names, convert, r, strict=True)} for r in cells]
        return Chunk(head[0], head[1], rows, query_s, generation)

    def _generation(self, cur: Any) -> int:
        """The fence row's MySQL generation in the open snapshot (0 without a fence table)."""
        if self._fence_table is None:
            return 0
        try:
            with mysql_errors(f"reading the fence row {self._fence_table}"):
                return mysql_generation(read_fence(cur, self._fence_table))
        except StatementRejected as exc:
            if exc.code == self._TABLE_DEF_CHANGED:
                raise SourceUnavailable(f"the fence table {self._fence_table} was created during the chunk's "
                                        "snapshot; the chunk is read again") from exc
            raise

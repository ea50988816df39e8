"""The client's MySQL side: a small connection pool, lossless reads, writes with their GTID.

Rows are read with the same SELECT list as the backfill (:mod:`replicator.mapping.cells`),
so a MySQL row and a row mapped back from DynamoDB compare exactly; the session runs in UTC so
TIMESTAMP columns read as UTC. Writes run in one MySQL transaction each; after the commit the
session's ``@@last_gtid`` (MariaDB) identifies the write, for read-your-writes.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog

from replicator.adapters.mysql import Connection, connect, mysql_errors
from replicator.catalog import TableShape, read_table_shape
from replicator.errors import (
    ConfigError,
    FencedError,
    ReplicatorError,
    SourceUnavailable,
    StatementRejected,
    UnknownTableError,
)
from replicator.events import Row
from replicator.mapping import TableMapper
from replicator.mapping.cells import converter, quote_ident, select_expr
from replicator.settings import MySQLSettings

log = structlog.get_logger("replicator.client")

_IDLE_PING_S = 5.0
_NO_SUCH_TABLE = 1146
_NO_PRIVILEGE = frozenset((1142, 1143, 1044))


class ConnectionPool:
    """At most ``size`` connections; a caller waits up to ``timeout_s`` for one."""

    def __init__(self, cfg: MySQLSettings, size: int, timeout_s: float) -> None:
        self._cfg = cfg
        self._slots = threading.BoundedSemaphore(size)
        self._idle: queue.LifoQueue[tuple[Connection[Any], float]] = queue.LifoQueue()
        self._timeout_s = timeout_s
        self.is_mariadb: bool | None = None

    @contextmanager
    def connection(self) -> Iterator[Connection[Any]]:
        if not self._slots.acquire(timeout=self._timeout_s):
            raise SourceUnavailable(f"no free MySQL connection within {self._timeout_s:.1f} s "
                                    "(client.pool_size connections are all busy)")
        conn: Connection[Any] | None = None
        try:
            conn = self._take()
            yield conn
        except SourceUnavailable:
            if conn is not None:  # the connection may be broken: never hand it out again
                _close(conn)
                conn = None
            raise
        finally:
            if conn is not None:
                self._idle.put((conn, time.monotonic()))
            self._slots.release()

    def _take(self) -> Connection[Any]:
        while True:
            try:
                conn, since = self._idle.get_nowait()
            except queue.Empty:
                conn = connect(self._cfg, utc=True, autocommit=True)
                if self.is_mariadb is None:
                    with mysql_errors("reading the server version", self._cfg), conn.cursor() as cur:
                        cur.execute("SELECT VERSION()")
                        self.is_mariadb = "mariadb" in str(cur.fetchone()[0]).lower()
                return conn
            if time.monotonic() - since < _IDLE_PING_S:
                return conn
            try:
                with mysql_errors("checking an idle connection", self._cfg):
                    conn.ping(reconnect=False)
                return conn
            except ReplicatorError:
                _close(conn)

    def close(self) -> None:
        while True:
            try:
                conn, _ = self._idle.get_nowait()
            except queue.Empty:
                return
            _close(conn)


def _close(conn: Connection[Any]) -> None:
    try:
        with mysql_errors("closing a connection"):
            conn.close()
    except ReplicatorError:
        pass  # already gone


def load_shape(pool: ConnectionPool, db: str, table: str) -> TableShape:
    with pool.connection() as conn, mysql_errors(f"reading the shape of {db}.{table}"), conn.cursor() as cur:
        shape = read_table_shape(cur, db, table)
    if shape is None:
        raise UnknownTableError(f"{db}.{table} is mapped (tables[].source) but MySQL has no such table, or "
                                "the client's MySQL user cannot see it; fix the mapping or the grants")
    return shape


@dataclass(frozen=True)
class WriteReceipt:
    """What a committed MySQL write leaves behind: affected rows and the transaction's GTID."""

    rowcount: int
    gtid: str | None


def sql_param(mapper: TableMapper, column: str, value: Any) -> Any:
    """An application value as a PyMySQL parameter (documents and sets need a text form)."""
    kind = mapper.types[column].kind
    if kind == "json" and value is not None and not isinstance(value, str | bytes):
        return json.dumps(value, ensure_ascii=False)
    if kind == "set" and isinstance(value, set | frozenset | list | tuple):
        return ",".join(sorted(value))
    return value


class MySQLSide:
    def __init__(self, pool: ConnectionPool, track_gtid: bool = True) -> None:
        self.pool = pool
        self.track_gtid = track_gtid
        self._select: dict[str, tuple[str, list[Any]]] = {}

    # ----------------------------------------------------------------- reads

    def _select_list(self, mapper: TableMapper) -> tuple[str, list[Any]]:
        plan = self._select.get(mapper.table)
        if plan is None:
            columns = list(mapper.attributes)
            exprs = [select_expr(c, mapper.types[c]) for c in columns]
            plan = (", ".join(exprs), [converter(mapper.types[c]) for c in columns])
            self._select[mapper.table] = plan
        return plan

    def select(self, mapper: TableMapper, where: str, params: Sequence[Any], order: str = "") -> list[Row]:
        """Mapped columns of the rows matching ``where``, in the event value model."""
        select_list, convert = self._select_list(mapper)
        db, table = mapper.table.split(".")
        sql = (f"SELECT {select_list} FROM {quote_ident(db)}.{quote_ident(table)} "  # noqa: S608
               f"WHERE {where}{' ORDER BY ' + order if order else ''}")
        with self.pool.connection() as conn, mysql_errors(f"reading {mapper.table}"), conn.cursor() as cur:
            cur.execute(sql, list(params))
            cells = cur.fetchall()
        columns = list(mapper.attributes)
        return [{c: f(v) for c, f, v in zip(columns, convert, row, strict=True)} for row in cells]

    def current_position(self) -> str | None:
        """The server's ``@@gtid_binlog_pos`` now (MariaDB), or None."""
        if not self.pool.is_mariadb:
            return None
        with self.pool.connection() as conn, mysql_errors("reading the binlog position"), \
                conn.cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            return str(cur.fetchone()[0] or "") or None

    # ----------------------------------------------------------------- writes

    @contextmanager
    def transaction(self, fence_sql: str | None = None) -> Iterator[MySQLTransaction]:
        """One write transaction. ``fence_sql``: the fence row's shared-lock read, first: a
        fenced MySQL raises :class:`FencedError` before anything is written."""
        with self.pool.connection() as conn:
            tx = MySQLTransaction(conn)
            with mysql_errors("beginning a transaction"):
                conn.begin()
            try:
                if fence_sql is not None:
                    _check_fence(conn, fence_sql)
                yield tx
            except BaseException:
                try:
                    with mysql_errors("rolling back"):
                        conn.rollback()
                except ReplicatorError as exc:
                    log.warning("rollback_failed", error=str(exc))
                    raise SourceUnavailable(f"rollback failed: {exc}") from exc
                raise
            with mysql_errors("committing"):
                conn.commit()
            if self.track_gtid and self.pool.is_mariadb and tx.rowcount:
                with mysql_errors("reading the transaction's GTID"), conn.cursor() as cur:
                    cur.execute("SELECT @@last_gtid")
                    tx.gtid = str(cur.fetchone()[0] or "") or None


def check_fence_readable(pool: ConnectionPool, fence_table: str) -> None:
    """At start-up: the application's MySQL user must be able to read the fence row (or the
    row must not exist yet), or every write would fail later for a reason it cannot fix."""
    from replicator.fence import select_fence_sql

    try:
        with pool.connection() as conn, mysql_errors("reading the fence row"), conn.cursor() as cur:
            cur.execute(select_fence_sql(fence_table))
            cur.fetchall()
    except StatementRejected as exc:
        if exc.code == _NO_SUCH_TABLE:
            return
        if exc.code in _NO_PRIVILEGE:
            db, table = fence_table.split(".")
            raise ConfigError(
                f"the application's MySQL user cannot read the write-target fence {fence_table} ({exc}); "
                f"every write transaction reads it under a shared lock: GRANT SELECT ON `{db}`.`{table}` "
                "(or on `{db}`.*) to client.mysql_user") from exc
        raise


def _check_fence(conn: Connection[Any], fence_sql: str) -> None:
    try:
        with mysql_errors("reading the fence row"), conn.cursor() as cur:
            cur.execute(fence_sql)
            row = cur.fetchone()
    except StatementRejected as exc:
        if exc.code == _NO_SUCH_TABLE:
            return  # no switch was ever prepared: MySQL takes the writes
        raise
    if row is not None and str(row[0]) != "mysql":
        raise FencedError(f"MySQL is fenced (writes_to={row[0]}, generation {row[1]}): the writes have moved "
                          "to DynamoDB and this client's phase was stale; nothing was written")


class MySQLTransaction:
    """Statements inside one open MySQL transaction."""

    def __init__(self, conn: Connection[Any]) -> None:
        self._conn = conn
        self.rowcount = 0
        self.last_insert_id = 0
        self.gtid: str | None = None

    def execute(self, sql: str, params: Sequence[Any], what: str) -> int:
        with mysql_errors(what), self._conn.cursor() as cur:
            n = int(cur.execute(sql, list(params)))
            self.last_insert_id = int(cur.lastrowid or 0)
        self.rowcount += n
        return n


def where_key(columns: Sequence[str]) -> str:
    return " AND ".join(f"{quote_ident(c)} = %s" for c in columns)


def insert_sql(table: str, columns: Sequence[str]) -> str:
    db, name = table.split(".")
    cols = ", ".join(quote_ident(c) for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    return f"INSERT INTO {quote_ident(db)}.{quote_ident(name)} ({cols}) VALUES ({marks})"  # noqa: S608


def update_sql(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    db, name = table.split(".")
    sets = ", ".join(f"{quote_ident(c)} = %s" for c in columns)
    return f"UPDATE {quote_ident(db)}.{quote_ident(name)} SET {sets} WHERE {where_key(key)}"  # noqa: S608


def delete_sql(table: str, key: Sequence[str]) -> str:
    db, name = table.split(".")
    return f"DELETE FROM {quote_ident(db)}.{quote_ident(name)} WHERE {where_key(key)}"  # noqa: S608

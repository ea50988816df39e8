"""The shop application's workload: its schema, its seed data and a stream of live changes.

Two halves, so that a sample application's load generator can reuse the first without the
second:

- :class:`ShopWorkload` is pure: seeded with a :class:`random.Random`, it returns one small
  operation at a time (:data:`Operation`: a user inserted, touched, deleted or re-keyed, an
  order placed) and keeps track of the next free user id. :func:`statement` turns an operation
  into its SQL and parameters. No connection, no clock.
- :class:`MySQLExecutor` applies operations to a connection from
  :func:`replicator.adapters.mysql.connect` (MySQL errors arrive as :mod:`replicator.errors`),
  and :class:`PacedWorkload` runs the generator at a fixed rate on a thread.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import structlog

from replicator.adapters.mysql import Connection, mysql_errors
from replicator.errors import ReplicatorError, SourceConfigError

log = structlog.get_logger("replicator.demo.workload")

SCHEMA = (
    """CREATE TABLE users (
         id BIGINT UNSIGNED PRIMARY KEY, email VARCHAR(120) NOT NULL, name VARCHAR(80),
         password_hash BINARY(32) NOT NULL, balance DECIMAL(12,2) NOT NULL DEFAULT 0,
         created_at DATETIME(6) NOT NULL, profile JSON, status ENUM('active','locked') NOT NULL)""",
    """CREATE TABLE orders (
         id BIGINT UNSIGNED PRIMARY KEY, user_id BIGINT UNSIGNED NOT NULL, total DECIMAL(12,2) NOT NULL,
         placed_at TIMESTAMP(3) NOT NULL, note TEXT, KEY by_user (user_id, placed_at))""",
)


# --------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class InsertUser:
    id: int
    email: str
    name: str | None
    password: str  # hashed by MySQL (SHA2 into BINARY(32)), as an application would store it
    balance: str = "0"
    profile: str | None = None  # JSON text


@dataclass(frozen=True)
class TouchUser:
    """A visit: the balance grows by 1.25 and ``profile.visits`` is set."""

    id: int
    visits: int


@dataclass(frozen=True)
class PlaceOrder:
    id: int
    user_id: int
    total: str
    note: str | None = None


@dataclass(frozen=True)
class DeleteUser:
    id: int


@dataclass(frozen=True)
class RekeyUser:
    """A primary-key change: the pipeline carries it as a delete and an insert."""

    id: int
    new_id: int


Operation = InsertUser | TouchUser | PlaceOrder | DeleteUser | RekeyUser


def statement(op: Operation) -> tuple[str, tuple[Any, ...]]:
    """The SQL of one operation and its parameters (PyMySQL ``%s`` style)."""
    match op:
        case InsertUser():
            return (
                "INSERT INTO users VALUES (%s, %s, %s, UNHEX(SHA2(%s, 256)), %s, NOW(6), %s, 'active')",
                (op.id, op.email, op.name, op.password, op.balance, op.profile),
            )
        case TouchUser():
            return (
                "UPDATE users SET balance = balance + 1.25, profile = JSON_SET(COALESCE(profile, '{}'), "
                "'$.visits', %s) WHERE id = %s",
                (op.visits, op.id),
            )
        case PlaceOrder():
            return ("INSERT INTO orders VALUES (%s, %s, %s, NOW(3), %s)",
                    (op.id, op.user_id, op.total, op.note))
        case DeleteUser():
            return "DELETE FROM users WHERE id = %s", (op.id,)
        case RekeyUser():
            return "UPDATE users SET id = %s WHERE id = %s", (op.new_id, op.id)


def seed(rows: int) -> Iterator[Operation]:
    """The shop as it is before the migration: ``rows`` users, then ``2 * rows`` orders."""
    for i in range(1, rows + 1):
        yield InsertUser(
            i, f"user{i}@shop.test", f"User {i}" if i % 7 else None, str(i), f"{i % 500}.50",
            '{"tier": "gold", "since": 2019}' if i % 3 == 0 else None,
        )
    for i in range(1, 2 * rows + 1):
        yield PlaceOrder(i, i % rows + 1, f"{i % 9000 / 100:.2f}", "gift 🎁" if i % 5 == 0 else "")


class ShopWorkload:
    """The live application: inserts, updates, deletes and a primary-key change now and then.

    ``first_free_id`` is the next user id not taken (the seed's ``rows + 1``). The mix, per
    operation: 35 % new users, 40 % visits, 15 % orders, 7 % deletes, 3 % key changes. Ids
    chosen for updates and deletes may no longer exist: the statement then changes nothing,
    as it would for an application racing its own users.
    """

    def __init__(self, rng: random.Random, first_free_id: int) -> None:
        self.rng = rng
        self.next_id = first_free_id

    def next_operation(self) -> Operation:
        r, uid = self.rng.random(), self.rng.randrange(1, self.next_id)
        if r < 0.35:
            new = self._take_id()
            return InsertUser(new, f"user{new}@shop.test", f"User {new}", str(new),
                              profile='{"tier": "new", "tags": []}')
        if r < 0.75:
            return TouchUser(uid, self.rng.randrange(100))
        if r < 0.9:
            return PlaceOrder(self.rng.randrange(10**9, 2 * 10**9), uid,
                              f"{self.rng.randrange(100, 99999) / 100:.2f}")
        if r < 0.97:
            return DeleteUser(uid)
        return RekeyUser(uid, self._take_id())

    def _take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


# --------------------------------------------------------------------------- applying them


def create_schema(conn: Connection[Any], database: str) -> None:
    """Create ``database`` with the shop's tables and make it the connection's current one."""
    with mysql_errors(f"creating the shop schema in {database}"), conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
        cur.execute(f"USE `{database}`")
        for ddl in SCHEMA:
            cur.execute(ddl)


def create_app_user(conn: Connection[Any], database: str, user: str, password: str,
                    fence_table: str | None = None) -> None:
    """The application's own MySQL user: reads and writes on ``database``, nothing else but a read
    of the write-target fence (``cutover.fence_table``), which every client write transaction
    makes first. That grant is on the fence's database, which holds nothing else: MySQL grants on
    a table only once it exists, and the fence row is created when a switch is first prepared."""
    with mysql_errors(f"creating the application's MySQL user {user}"), conn.cursor() as cur:
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{database}`.* TO %s@'%%'", (user,))
        fence_db = fence_table.split(".")[0] if fence_table else database
        if fence_db != database:
            cur.execute(f"GRANT SELECT ON `{fence_db}`.* TO %s@'%%'", (user,))


class MySQLExecutor:
    """Applies operations to one connection (autocommit: each statement is its own transaction)."""

    def __init__(self, conn: Connection[Any]) -> None:
        self.conn = conn

    def apply(self, op: Operation) -> None:
        sql, params = statement(op)
        with mysql_errors(f"{type(op).__name__} {op.id}"), self.conn.cursor() as cur:
            cur.execute(sql, params)

    def apply_many(self, ops: Iterable[Operation]) -> None:
        """Runs of operations of one kind go as one ``executemany`` (a multi-row insert)."""
        for kind, run in groupby(ops, type):
            stmts = [statement(op) for op in run]
            with mysql_errors(f"{len(stmts)} x {kind.__name__}"), self.conn.cursor() as cur:
                cur.executemany(stmts[0][0], [params for _, params in stmts])

    def binlog_head(self) -> tuple[str, int]:
        """The binlog file and offset after everything applied so far."""
        with mysql_errors("reading the binlog position"), self.conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            head = cur.fetchone()
        if not head:
            raise SourceConfigError("SHOW MASTER STATUS returned nothing: the binlog is off on this server")
        return str(head[0]), int(head[1])

    def close(self) -> None:
        self.conn.close()


class PacedWorkload(threading.Thread):
    """Runs a :class:`ShopWorkload` through an executor at ``ops_per_s`` until :meth:`halt`.

    A statement MySQL refuses stops the thread; the error is logged and kept in :attr:`error`.
    """

    def __init__(self, workload: ShopWorkload, executor: MySQLExecutor, ops_per_s: float) -> None:
        super().__init__(daemon=True, name="shop-workload")
        self.workload, self.executor, self.ops_per_s = workload, executor, ops_per_s
        self._halt = threading.Event()
        self.done = 0
        self.error: ReplicatorError | None = None

    def run(self) -> None:
        try:
            while not self._halt.wait(1 / self.ops_per_s):
                self.executor.apply(self.workload.next_operation())
                self.done += 1
        except ReplicatorError as exc:
            self.error = exc
            log.warning("workload_failed", done=self.done, error=str(exc))

    def halt(self, timeout_s: float = 10.0) -> None:
        self._halt.set()
        self.join(timeout_s)

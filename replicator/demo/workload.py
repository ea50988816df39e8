"""The shop application's workload: its schema, its seed data and a stream of live changes.

Two halves, so that a sample application's load generator can reuse the first without the
second:

- :class:`ShopWorkload` is pure: seeded with a :class:`random.Random`, it returns one small
  operation at a time (:data:`Operation`: a user inserted, touched, deleted or re-keyed, an
  order placed with its one to three items) and keeps track of the next free user and order
  ids, and of the orders it placed (for reads). :func:`statements` turns an operation into its
  SQL and parameters (an order: the order's row and its items' rows, one transaction). No
  connection, no clock.
- :class:`MySQLExecutor` applies operations to a connection from
  :func:`replicator.adapters.mysql.connect` (MySQL errors arrive as :mod:`replicator.errors`),
  and :class:`PacedWorkload` runs the generator at a fixed rate on a thread.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
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
    # An order's items carry its user_id too: embedded in the order's DynamoDB item
    # (USER#{user_id} / ORDER#{id}), an item must name that item's whole key (embed.on).
    """CREATE TABLE order_items (
         id BIGINT UNSIGNED PRIMARY KEY, order_id BIGINT UNSIGNED NOT NULL, user_id BIGINT UNSIGNED NOT NULL,
         sku VARCHAR(40) NOT NULL, qty INT NOT NULL, price DECIMAL(10,2) NOT NULL,
         KEY by_order (order_id))""",
)

#: An order's items are numbered within it: item id = order id * ITEM_IDS_PER_ORDER + line (1, 2, ...).
ITEM_IDS_PER_ORDER = 100
#: The live workload's first order id: above any seeded order (the seed numbers them from 1).
FIRST_LIVE_ORDER_ID = 10**9


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
class OrderLine:
    """One item of an order: ``qty`` times ``sku`` at ``price`` (exact decimal text) each."""

    sku: str
    qty: int
    price: str


@dataclass(frozen=True)
class PlaceOrder:
    """An order and its items, in one transaction; the total is the items' sum."""

    id: int
    user_id: int
    items: tuple[OrderLine, ...]
    note: str | None = None

    @property
    def total(self) -> str:
        return str(sum((line.qty * Decimal(line.price) for line in self.items), Decimal("0.00")))

    def item_ids(self) -> list[int]:
        return [self.id * ITEM_IDS_PER_ORDER + n for n in range(1, len(self.items) + 1)]


@dataclass(frozen=True)
class DeleteUser:
    id: int


@dataclass(frozen=True)
class RekeyUser:
    """A primary-key change: the pipeline carries it as a delete and an insert."""

    id: int
    new_id: int


Operation = InsertUser | TouchUser | PlaceOrder | DeleteUser | RekeyUser


def statements(op: Operation) -> list[tuple[str, tuple[Any, ...]]]:
    """The SQL of one operation and its parameters (PyMySQL ``%s`` style), in order; several
    statements (an order and its items) go in one transaction."""
    match op:
        case InsertUser():
            return [(
                "INSERT INTO users VALUES (%s, %s, %s, UNHEX(SHA2(%s, 256)), %s, NOW(6), %s, 'active')",
                (op.id, op.email, op.name, op.password, op.balance, op.profile),
            )]
        case TouchUser():
            return [(
                "UPDATE users SET balance = balance + 1.25, profile = JSON_SET(COALESCE(profile, '{}'), "
                "'$.visits', %s) WHERE id = %s",
                (op.visits, op.id),
            )]
        case PlaceOrder():
            order = ("INSERT INTO orders VALUES (%s, %s, %s, NOW(3), %s)",
                     (op.id, op.user_id, op.total, op.note))
            items = [("INSERT INTO order_items VALUES (%s, %s, %s, %s, %s, %s)",
                      (iid, op.id, op.user_id, line.sku, line.qty, line.price))
                     for iid, line in zip(op.item_ids(), op.items, strict=True)]
            return [order, *items]
        case DeleteUser():
            return [("DELETE FROM users WHERE id = %s", (op.id,))]
        case RekeyUser():
            return [("UPDATE users SET id = %s WHERE id = %s", (op.new_id, op.id))]


def order_lines(rng: random.Random) -> tuple[OrderLine, ...]:
    """One to three items, as a shopper picks them."""
    return tuple(OrderLine(f"SKU-{rng.randrange(500):04d}", rng.randrange(1, 5),
                           f"{rng.randrange(100, 9999) / 100:.2f}") for _ in range(rng.randrange(1, 4)))


def seed_order(i: int, rows: int) -> PlaceOrder:
    """The seed's order ``i`` (1 .. 2 * rows): user ``i % rows + 1``, ``1 + i % 3`` items."""
    lines = tuple(OrderLine(f"SKU-{(7 * i + n) % 500:04d}", 1 + (i + n) % 4,
                            f"{(i * 31 + n * 17) % 9000 / 100 + 1:.2f}") for n in range(1 + i % 3))
    return PlaceOrder(i, i % rows + 1, lines, "gift 🎁" if i % 5 == 0 else "")


def seed(rows: int) -> Iterator[Operation]:
    """The shop as it is before the migration: ``rows`` users, then ``2 * rows`` orders with one to
    three items each (:func:`seed_order`)."""
    for i in range(1, rows + 1):
        yield InsertUser(
            i, f"user{i}@shop.test", f"User {i}" if i % 7 else None, str(i), f"{i % 500}.50",
            '{"tier": "gold", "since": 2019}' if i % 3 == 0 else None,
        )
    for i in range(1, 2 * rows + 1):
        yield seed_order(i, rows)


class ShopWorkload:
    """The live application: inserts, updates, deletes and a primary-key change now and then.

    ``first_free_id`` is the next user id not taken (the seed's ``rows + 1``: users
    ``1 .. first_free_id - 1`` and their seeded orders are taken to exist). The mix, per
    operation: 35 % new users, 40 % visits, 15 % orders (one to three items each), 7 % deletes,
    3 % key changes. Ids chosen for updates and deletes may no longer exist: the statement then
    changes nothing, as it would for an application racing its own users. Order ids are taken in
    turn from ``first_order_id``, so that no two orders share an id: in phase 5, where DynamoDB
    keys an order by its user and its id, nothing would refuse a duplicate id under another user
    (docs/model.md, "What is not there yet").
    """

    def __init__(self, rng: random.Random, first_free_id: int,
                 first_order_id: int = FIRST_LIVE_ORDER_ID) -> None:
        self.rng = rng
        self.next_id = first_free_id
        self.next_order_id = first_order_id
        self.seeded = first_free_id - 1
        self.placed: list[tuple[int, int]] = []  # (order id, user id) of the orders placed so far

    def next_operation(self) -> Operation:
        r, uid = self.rng.random(), self.rng.randrange(1, self.next_id)
        if r < 0.35:
            new = self._take_id()
            return InsertUser(new, f"user{new}@shop.test", f"User {new}", str(new),
                              profile='{"tier": "new", "tags": []}')
        if r < 0.75:
            return TouchUser(uid, self.rng.randrange(100))
        if r < 0.9:
            oid, self.next_order_id = self.next_order_id, self.next_order_id + 1
            self.placed.append((oid, uid))
            return PlaceOrder(oid, uid, order_lines(self.rng))
        if r < 0.97:
            return DeleteUser(uid)
        return RekeyUser(uid, self._take_id())

    def order_to_read(self) -> tuple[int, int]:
        """``(order id, user id)`` of an order to read: one this workload placed or a seeded one
        (either may be gone with its user, or never placed: its user was gone)."""
        if self.placed and (not self.seeded or self.rng.random() < 0.5):
            return self.rng.choice(self.placed)
        if not self.seeded:
            return self.next_order_id, 1  # nothing placed, nothing seeded: an order that is not there
        i = self.rng.randrange(1, 2 * self.seeded + 1)
        return i, i % self.seeded + 1

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
                    fence_table: str | None = None, *, versions_table: str | None = None) -> None:
    """The application's own MySQL user: reads and writes on ``database``, nothing else but a read
    of the write-target fence (``cutover.fence_table``), which every client write transaction
    makes first. That grant is on the fence's database, which holds nothing else: MySQL grants on
    a table only once it exists, and the fence row is created when a switch is first prepared.

    ``versions_table`` (``cutover.reverse_versions_table``, in ``database``): reverse replication,
    which writes as this user, creates it at its start-up, so the user may also CREATE in
    ``database`` (the demo's own database, dropped with everything in it at the end)."""
    with mysql_errors(f"creating the application's MySQL user {user}"), conn.cursor() as cur:
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (user, password))
        cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{database}`.* TO %s@'%%'", (user,))
        fence_db = fence_table.split(".")[0] if fence_table else database
        if fence_db != database:
            cur.execute(f"GRANT SELECT ON `{fence_db}`.* TO %s@'%%'", (user,))
        if versions_table is not None:
            if versions_table.split(".")[0] != database:
                raise SourceConfigError(f"the versions table {versions_table} must be in the shop's database "
                                        f"{database} (cutover.reverse_versions_table)")
            cur.execute(f"GRANT CREATE ON `{database}`.* TO %s@'%%'", (user,))


class MySQLExecutor:
    """Applies operations to one connection (autocommit), each operation one transaction."""

    def __init__(self, conn: Connection[Any]) -> None:
        self.conn = conn

    def apply(self, op: Operation) -> None:
        self._transaction(f"{type(op).__name__} {op.id}", [(sql, [params]) for sql, params in statements(op)])

    def apply_many(self, ops: Iterable[Operation]) -> None:
        """A run of operations of one kind goes as one transaction: an ``executemany`` (a multi-row
        insert) per statement of the kind, orders and their items together."""
        for kind, run in groupby(ops, type):
            by_sql: dict[str, list[tuple[Any, ...]]] = {}
            count = 0
            for op in run:
                count += 1
                for sql, params in statements(op):
                    by_sql.setdefault(sql, []).append(params)
            self._transaction(f"{count} x {kind.__name__}", list(by_sql.items()))

    def _transaction(self, what: str, batches: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        with mysql_errors(what):
            self.conn.begin()
            try:
                with self.conn.cursor() as cur:
                    for sql, rows in batches:
                        cur.executemany(sql, rows)
                self.conn.commit()
            except BaseException:
                self.conn.rollback()
                raise

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

"""The single-table model walked 1 -> 5 and back under live traffic (docs/model.md): users and
their orders in one DynamoDB table, each order an item of its user's collection
(``USER#{user_id}`` / ``ORDER#{id}``) with its order items embedded in it. Orders move to other
users (their items move with them), order items are added, changed and deleted, orders are
deleted with their items (``ON DELETE CASCADE`` in MySQL), in every phase. Eight application
threads write through the client while the phases change, 4 <-> 5 on the real switch protocol
with the reverse replication; no error reaches them, and at the end every acknowledged write is
in both stores, each order in exactly one item, each order item in its order's item.

A package of its own: the client package's shop (a pipeline of its own) has stopped by the
time this one starts, so the two do not share the machine."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from replicator.adapters.dynamodb import dynamodb_client
from replicator.client import Table
from replicator.mapping import is_tombstone
from tests.replicator.client.conftest import SCHEMA, Shop, open_shop
from tests.replicator.client.test_phase_walk import THREADS, Worker, stop_workers

pytestmark = pytest.mark.integration

WALK = (1, 2, 3, 4, 5, 4, 5, 4)
DWELL_S = 1.5
MOVING = 10**9
ORDER_ITEMS = ("CREATE TABLE order_items (id BIGINT PRIMARY KEY, order_id BIGINT NOT NULL, "
               "user_id INT NOT NULL, sku VARCHAR(20) NOT NULL, qty INT NOT NULL, KEY (order_id), "
               "CONSTRAINT fk_item_order FOREIGN KEY (order_id) REFERENCES orders (id) ON DELETE CASCADE)")


def single_table(db: str) -> list[dict[str, Any]]:
    return [
        {"source": f"{db}.users", "target": "shop", "key": {"pk": "USER#{id}", "sk": "#META"},
         "indexes": [{"name": "by_email", "pk": "email"}],
         "collections": [{"name": "collection", "members": {f"{db}.orders": {"user_id": "id"}}}]},
        {"source": f"{db}.orders", "target": "shop", "key": {"pk": "USER#{user_id}", "sk": "ORDER#{id:012d}"},
         "indexes": [{"name": "by_user", "pk": "user_id", "sk": "created_at"}]},
        {"source": f"{db}.order_items",
         "embed": {"parent": f"{db}.orders", "as": "items", "on": {"order_id": "id", "user_id": "user_id"}}},
    ]


@pytest.fixture(scope="module")
def shop(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    workdir = Path(tmp_path_factory.mktemp("single-table-pipeline"))
    with open_shop(stack_env, workdir, schema=(*SCHEMA, ORDER_ITEMS), mapping=single_table,
                   letter="s") as shop:
        yield shop


class AggregateWorker(Worker):
    """The phase walk's worker, with orders of its own (ids from MOVING up; the phase walk's step
    inserts orders below) that move between its users and hold order items."""

    def __init__(self, shop: Shop, ids: list[int], seed: int) -> None:
        super().__init__(shop, ids, seed)
        self.orders: dict[int, int] = {}  # order id -> user id, as last acknowledged
        self.lines: dict[int, tuple[int, int]] = {}  # order item id -> (order id, qty)
        self.gone_lines: set[int] = set()  # deleted, alone or with their order
        self.done: dict[tuple[str, int], int] = {}  # (operation, phase) -> count
        self.seed = seed

    def _count(self, what: str) -> None:
        key = (what, self.shop.client.phase.phase)
        self.done[key] = self.done.get(key, 0) + 1

    def _lines_of(self, oid: int) -> dict[int, int]:
        return {i: q for i, (o, q) in self.lines.items() if o == oid}

    def step(self, users: object, orders: object, uid: int) -> None:
        assert isinstance(users, Table) and isinstance(orders, Table)
        items = self.shop.client.table(f"{self.shop.db}.order_items")
        r = self.rng.random()
        bare = [o for o in self.orders if not self._lines_of(o)]
        if r < 0.12 or (r < 0.5 and not self.orders):
            oid = MOVING + uid * 1000 + self.ops % 1000
            if oid in self.orders:
                return
            orders.insert({"id": oid, "user_id": uid, "total": Decimal("2.50"), "status": "new",
                           "created_at": dt.datetime(2024, 1, 1, 0, 0, 0, self.ops)})
            self.orders[oid] = uid
        elif r < 0.24 and bare:  # an order without items moves to another user
            oid = self.rng.choice(sorted(bare))
            to = self.rng.choice([u for u in self.ids if u != self.orders[oid]])
            assert orders.update({"id": oid, "user_id": self.orders[oid]}, {"user_id": to}) == 1, oid
            self.orders[oid] = to
            self._count("move")
        elif r < 0.36:  # an order item added to an order
            oid = self.rng.choice(sorted(self.orders))
            iid = MOVING + self.seed * 100_000 + self.ops
            qty = self.rng.randrange(1, 9)
            items.insert({"id": iid, "order_id": oid, "user_id": self.orders[oid], "sku": f"sku{iid % 97}",
                          "qty": qty})
            self.lines[iid] = (oid, qty)
            self._count("item insert")
        elif r < 0.44 and self.lines:  # an order item changed
            iid = self.rng.choice(sorted(self.lines))
            oid, was = self.lines[iid]
            # A new value: an update that sets the value a row has changes no row and counts 0,
            # in every phase (docs/client.md), and the test asserts 1.
            qty = self.rng.choice([q for q in range(10, 99) if q != was])
            key = {"id": iid, "order_id": oid, "user_id": self.orders[oid]}
            assert items.update(key, {"qty": qty}) == 1, key
            self.lines[iid] = (oid, qty)
            self._count("item update")
        elif r < 0.48 and self.lines:  # an order item deleted
            iid = self.rng.choice(sorted(self.lines))
            oid, _ = self.lines.pop(iid)
            assert items.delete({"id": iid, "order_id": oid, "user_id": self.orders[oid]}) == 1, iid
            self.gone_lines.add(iid)
            self._count("item delete")
        elif r < 0.51 and self.orders:  # an order deleted with its items
            oid = self.rng.choice(sorted(self.orders))
            assert orders.delete({"id": oid, "user_id": self.orders.pop(oid)}) == 1, oid
            for iid in self._lines_of(oid):
                del self.lines[iid]
                self.gone_lines.add(iid)
            self._count("order delete")
        elif r < 0.58 and self.orders:  # an order read with its items
            oid = self.rng.choice(sorted(self.orders))
            got = orders.get({"id": oid, "user_id": self.orders[oid]}, include=["items"])
            assert got is not None, oid
            assert {i["id"]: i["qty"] for i in got["items"]} == self._lines_of(oid), (oid, got)
        elif r < 0.62 and self.expected.get(uid) not in ("absent", None):
            got = users.query("collection", {"id": uid})
            mine = sorted(o for o, u in self.orders.items() if u == uid)
            assert got and got[0]["id"] == uid, (uid, got)
            assert sorted(o["id"] for o in got[0]["orders"] if o["id"] >= MOVING) == mine, (uid, got, mine)
        else:
            super().step(users, orders, uid)


def _scan(shop: Shop) -> tuple[dict[int, list[int]], dict[int, tuple[int, int]]]:
    """DynamoDB, full scan: order id -> the users under whose key a live item of it stands; order
    item id -> (order id, qty) of its live entry."""
    client = dynamodb_client(shop.settings.dynamodb)
    orders: dict[int, list[int]] = {}
    lines: dict[int, tuple[int, int]] = {}
    table = f"{shop.settings.dynamodb.table_prefix}shop"
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            if item.get("_table", {}).get("S") != shop.orders:
                continue
            if not is_tombstone(item):
                orders.setdefault(int(item["id"]["N"]), []).append(int(item["user_id"]["N"]))
            for entry in item.get("items", {}).get("M", {}).values():
                e = entry["M"]
                if not e.get("_deleted", {}).get("BOOL"):
                    lines[int(e["id"]["N"])] = (int(e["order_id"]["N"]), int(e["qty"]["N"]))
    return orders, lines


def test_walking_1_to_5_and_back_with_moving_orders_and_embedded_items_loses_nothing(shop: Shop) -> None:
    shop.phase(1)
    workers = [AggregateWorker(shop, shop.next_ids(12), seed) for seed in range(300, 300 + THREADS)]
    for w in workers:
        w.start()
    seen = []
    try:
        for phase in WALK:
            shop.phase(phase)
            seen.append(phase)
            time.sleep(DWELL_S)
    finally:
        errors = stop_workers(workers)
    assert not errors, errors[:5]
    assert seen == list(WALK)
    done: dict[tuple[str, int], int] = {}
    for w in workers:
        for k, n in w.done.items():
            done[k] = done.get(k, 0) + n
    for what in ("move", "item insert", "item update", "item delete"):  # in every phase, 5 included
        assert all(done.get((what, p)) for p in sorted(set(WALK))), (what, done)
    assert shop.applied(shop.users) and shop.applied(shop.orders)
    orders, lines = _scan(shop)
    with shop.admin.cursor() as cur:
        cur.execute("SELECT id, order_id, qty FROM order_items")
        mysql_lines = {int(i): (int(o), int(q)) for i, o, q in cur.fetchall()}
    for w in workers:  # every acknowledged write, in both stores; each order in one item
        for uid, name in w.expected.items():
            row = shop.mysql_row("users", uid)
            assert (row["name"] if row else None) == name, uid
        for oid, uid in w.orders.items():
            row = shop.mysql_row("orders", oid)
            assert row is not None and row["user_id"] == uid, (oid, row, uid)
            assert orders.get(oid) == [uid], (oid, orders.get(oid), uid)
        for iid, line in w.lines.items():
            assert mysql_lines.get(iid) == line, (iid, mysql_lines.get(iid), line)
            assert lines.get(iid) == line, (iid, lines.get(iid), line)
        for iid in w.gone_lines - set(w.lines):
            assert iid not in mysql_lines and iid not in lines, iid
    shop.phase(1)

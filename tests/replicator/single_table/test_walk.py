"""The single-table model walked 1 -> 5 and back under live traffic (docs/model.md): users and
their orders in one DynamoDB table, each order an item of its user's collection
(``USER#{user_id}`` / ``ORDER#{id}``), so moving an order to another user moves its item, in
every phase. Eight application threads write through the client while the phases change, 4 <->
5 on the real switch protocol with the reverse replication; no error reaches them, and at the
end every acknowledged write is in both stores, each order in exactly one item.

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
from tests.replicator.client.conftest import Shop, open_shop
from tests.replicator.client.test_phase_walk import THREADS, Worker, stop_workers

pytestmark = pytest.mark.integration

WALK = (1, 2, 3, 4, 5, 4, 5, 4)
DWELL_S = 1.5
MOVING = 10**9


def single_table(db: str) -> list[dict[str, Any]]:
    return [
        {"source": f"{db}.users", "target": "shop", "key": {"pk": "USER#{id}", "sk": "#META"},
         "indexes": [{"name": "by_email", "pk": "email"}],
         "collections": [{"name": "collection", "members": {f"{db}.orders": {"user_id": "id"}}}]},
        {"source": f"{db}.orders", "target": "shop", "key": {"pk": "USER#{user_id}", "sk": "ORDER#{id:012d}"},
         "indexes": [{"name": "by_user", "pk": "user_id", "sk": "created_at"}]},
    ]


@pytest.fixture(scope="module")
def shop(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    workdir = Path(tmp_path_factory.mktemp("single-table-pipeline"))
    with open_shop(stack_env, workdir, mapping=single_table, letter="s") as shop:
        yield shop


class MovingWorker(Worker):
    """The phase walk's worker, whose orders also move between its users. Its own orders have ids
    from MOVING up (the phase walk's step inserts orders of its own below)."""

    def __init__(self, shop: Shop, ids: list[int], seed: int) -> None:
        super().__init__(shop, ids, seed)
        self.orders: dict[int, int] = {}  # order id -> user id, as last acknowledged
        self.moves: dict[int, int] = {}  # phase -> orders moved in it

    def step(self, users: object, orders: object, uid: int) -> None:
        assert isinstance(users, Table) and isinstance(orders, Table)
        r = self.rng.random()
        if r < 0.12 or (r < 0.3 and not self.orders):
            oid = MOVING + uid * 1000 + self.ops % 1000
            if oid in self.orders:
                return
            orders.insert({"id": oid, "user_id": uid, "total": Decimal("2.50"), "status": "new",
                           "created_at": dt.datetime(2024, 1, 1, 0, 0, 0, self.ops)})
            self.orders[oid] = uid
        elif r < 0.3:
            oid = self.rng.choice(sorted(self.orders))
            to = self.rng.choice([u for u in self.ids if u != self.orders[oid]])
            changed = orders.update({"id": oid, "user_id": self.orders[oid]}, {"user_id": to})
            assert changed == 1, (oid, self.orders[oid], to)
            self.orders[oid] = to
            phase = self.shop.client.phase.phase
            self.moves[phase] = self.moves.get(phase, 0) + 1
        elif r < 0.38 and self.expected.get(uid) not in ("absent", None):
            got = users.query("collection", {"id": uid})
            mine = sorted(o for o, u in self.orders.items() if u == uid)
            assert got and got[0]["id"] == uid, (uid, got)
            assert sorted(o["id"] for o in got[0]["orders"] if o["id"] >= MOVING) == mine, (uid, got, mine)
        else:
            super().step(users, orders, uid)


def _live_orders(shop: Shop) -> dict[int, list[int]]:
    """Order id -> the users under whose key a live item of it stands (DynamoDB, full scan)."""
    client = dynamodb_client(shop.settings.dynamodb)
    out: dict[int, list[int]] = {}
    for page in client.get_paginator("scan").paginate(TableName=f"{shop.settings.dynamodb.table_prefix}shop",
                                                      ConsistentRead=True):
        for item in page["Items"]:
            if item.get("_table", {}).get("S") == shop.orders and not is_tombstone(item):
                out.setdefault(int(item["id"]["N"]), []).append(int(item["user_id"]["N"]))
    return out


def test_walking_1_to_5_and_back_moving_orders_between_users_loses_nothing(shop: Shop) -> None:
    shop.phase(1)
    workers = [MovingWorker(shop, shop.next_ids(12), seed) for seed in range(300, 300 + THREADS)]
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
    moves = {p: sum(w.moves.get(p, 0) for w in workers) for p in sorted(set(WALK))}
    assert all(moves.values()), moves  # orders moved in every phase, 5 included
    assert shop.applied(shop.users) and shop.applied(shop.orders)
    live = _live_orders(shop)
    for w in workers:  # every acknowledged write, in both stores; each order in one item
        for uid, name in w.expected.items():
            row = shop.mysql_row("users", uid)
            assert (row["name"] if row else None) == name, uid
        for oid, uid in w.orders.items():
            row = shop.mysql_row("orders", oid)
            assert row is not None and row["user_id"] == uid, (oid, row, uid)
            assert live.get(oid) == [uid], (oid, live.get(oid), uid)
    shop.phase(1)

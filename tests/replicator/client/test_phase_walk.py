"""The product's promise: walk the phases under live traffic with no error the application sees
and no write lost."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from decimal import Decimal

import pytest

from tests.replicator.client.conftest import Shop

pytestmark = pytest.mark.integration

THREADS = 8
WALK = (1, 2, 3, 4, 3, 2, 1)
LOOPS = 2
DWELL_S = 0.6


class Worker(threading.Thread):
    def __init__(self, shop: Shop, ids: list[int], seed: int) -> None:
        super().__init__(daemon=True)
        self.shop, self.ids, self.rng = shop, ids, random.Random(seed)
        self.stop = threading.Event()
        self.hold = threading.Event()  # set: stop starting operations (idle says none is running)
        self.idle = threading.Event()
        self.errors: list[str] = []
        self.expected: dict[int, str | None] = {}  # id -> name last written (None: deleted)
        self.ops = 0

    def run(self) -> None:
        users = self.shop.client.table(self.shop.users)
        orders = self.shop.client.table(self.shop.orders)
        while not self.stop.is_set():
            if self.hold.is_set():
                self.idle.set()
                time.sleep(0.01)
                continue
            self.idle.clear()
            uid = self.rng.choice(self.ids)
            try:
                self.step(users, orders, uid)
                self.ops += 1
            except Exception as exc:  # the test counts every error the application would see
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def step(self, users: object, orders: object, uid: int) -> None:
        from replicator.client import Table

        assert isinstance(users, Table) and isinstance(orders, Table)
        known = self.expected.get(uid, "absent")
        r = self.rng.random()
        if known in ("absent", None):
            name = f"n{self.rng.randrange(10**6)}"
            users.insert(self.shop.user(uid, name=name))
            self.expected[uid] = name
        elif r < 0.35:
            name = f"n{self.rng.randrange(10**6)}"
            if name == known:  # the same value changes no row: update() would rightly count 0
                name += "'"
            assert users.update({"id": uid}, {"name": name}) == 1
            self.expected[uid] = name
        elif r < 0.45:
            assert users.delete({"id": uid}) == 1
            self.expected[uid] = None
        elif r < 0.55:
            with self.shop.client.transaction() as tx:
                tx.table(self.shop.orders).insert({
                    "id": uid * 1000 + self.ops % 1000, "user_id": uid, "total": Decimal("1.00"),
                    "status": "new", "created_at": dt.datetime(2024, 1, 1)})
                tx.table(self.shop.users).update({"id": uid}, {"balance": Decimal("1.00")})
        else:
            row = users.get({"id": uid})  # this thread's own write: read-your-writes
            assert row is not None and row["name"] == known, (uid, row, known)
            orders.query("by_user", {"user_id": uid})


def stop_workers(workers: list[Worker]) -> list[str]:
    """Stop the workers (bounded) and return every error the application saw."""
    for w in workers:
        w.stop.set()
    for w in workers:
        w.join(30)
    return [e for w in workers for e in w.errors]


def test_walking_the_phases_under_eight_threads_shows_no_error_and_loses_no_write(shop: Shop) -> None:
    shop.phase(1)
    workers = [Worker(shop, shop.next_ids(40), seed) for seed in range(THREADS)]
    for w in workers:
        w.start()
    seen = []
    try:
        for _ in range(LOOPS):
            for phase in WALK:
                shop.phase(phase)
                seen.append(phase)
                time.sleep(DWELL_S)
    finally:
        errors = stop_workers(workers)
    assert not errors, errors[:5]
    assert sum(w.ops for w in workers) > THREADS * 10
    for w in workers:  # every write is in MySQL: the source of truth in phases 1-4
        for uid, name in w.expected.items():
            row = shop.mysql_row("users", uid)
            assert (row["name"] if row else None) == name, uid
    assert seen == list(WALK) * LOOPS

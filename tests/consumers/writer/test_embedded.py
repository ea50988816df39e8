"""Embedded children on DynamoDB Local: whatever order (and however often) the parent's and the
children's writes arrive in, the parent item ends up as MySQL's parent row with its children.

A random history over two orders and their items — inserts, updates, deletes, children moved
between parents, parents deleted (their children with them, as ON DELETE CASCADE does without a
binlog event, or deleted by the application first) and inserted again, children inserted after
that — is turned into the writer's conditional writes, which are then applied through the real
applier in a random order with random replays. Each parent item must equal the model's final
state: the parent's row (or none) and exactly its live children.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from consumers.writer.applier import ConditionalApplier
from consumers.writer.tables import TableSpec, ensure_tables
from replicator.mapping import TableMapper, is_tombstone
from replicator.mapping.conditional import ConditionalWrite, entry_write, tombstone, upsert
from replicator.mapping.embedded import EmbeddedMapper, live_entries
from replicator.settings import Settings

pytestmark = pytest.mark.integration

ORDERS = (("id", "int"), ("user_id", "int"), ("note", "varchar(40)"))
ITEMS = (("id", "int"), ("order_id", "int"), ("user_id", "int"), ("qty", "int"))


def _model() -> tuple[TableMapper, EmbeddedMapper]:
    settings = Settings(tables=[
        {"source": "s.orders", "target": "shop", "key": {"pk": "USER#{user_id}", "sk": "ORDER#{id:06d}"}},
        {"source": "s.order_items", "embed": {"parent": "s.orders", "as": "items",
                                               "on": {"order_id": "id", "user_id": "user_id"}}},
    ])
    orders = TableMapper(settings.tables[0], ORDERS, ("id",))
    items = EmbeddedMapper(TableMapper(settings.tables[1], ITEMS, ("id",)), orders)
    items.validate()
    return orders, items


class History:
    """MySQL's side: two orders of user 7, their items; every change as the writer's writes."""

    def __init__(self, rnd: random.Random, table: str) -> None:
        self.rnd = rnd
        self.table = table
        self.orders_m, self.items_m = _model()
        self.version = 1000
        self.parents: dict[int, dict[str, Any]] = {}
        self.children: dict[int, dict[str, Any]] = {}
        self.next_child = 1
        self.writes: list[ConditionalWrite] = []

    def _v(self) -> int:
        self.version += 10
        return self.version

    def step(self) -> None:
        rnd = self.rnd
        pid = rnd.choice((1, 2))
        parent = self.parents.get(pid)
        if parent is None:
            row = {"id": pid, "user_id": 7, "note": f"n{self.version}"}
            self.parents[pid] = row
            self.writes.append(upsert(self.orders_m, self.table, row, self._v(), "cdc"))
            return
        kids = [c for c in self.children.values() if c["order_id"] == pid]
        op = rnd.choice(("note", "child", "child", "qty", "delete_child", "move", "delete_parent"))
        if op == "note":
            parent = {**parent, "note": f"n{self.version}"}
            self.parents[pid] = parent
            self.writes.append(upsert(self.orders_m, self.table, parent, self._v(), "cdc"))
        elif op == "child" or not kids:
            row = {"id": self.next_child, "order_id": pid, "user_id": 7, "qty": rnd.randint(1, 9)}
            self.next_child += 1
            self.children[row["id"]] = row
            self.writes.append(entry_write(self.items_m, self.table, row, self._v(), deleted=False))
        elif op == "qty":
            row = {**rnd.choice(kids), "qty": rnd.randint(10, 99)}
            self.children[row["id"]] = row
            self.writes.append(entry_write(self.items_m, self.table, row, self._v(), deleted=False))
        elif op == "delete_child":
            row = self.children.pop(rnd.choice(kids)["id"])
            self.writes.append(entry_write(self.items_m, self.table, row, self._v(), deleted=True,
                                           expires_at=2**31))
        elif op == "move" and (3 - pid) in self.parents:
            old = rnd.choice(kids)
            new = {**old, "order_id": 3 - pid}
            self.children[new["id"]] = new
            v = self._v()  # one update event: a tombstone entry in the old parent, the entry in the new
            self.writes.append(entry_write(self.items_m, self.table, old, v, deleted=True, expires_at=2**31))
            self.writes.append(entry_write(self.items_m, self.table, new, v, deleted=False))
        elif op == "delete_parent":
            if rnd.random() < 0.5:  # the application deletes the children first (binlog events)
                for kid in kids:
                    self.writes.append(entry_write(self.items_m, self.table, self.children.pop(kid["id"]),
                                                   self._v(), deleted=True, expires_at=2**31))
            else:  # ON DELETE CASCADE: InnoDB removes them below the binlog, no event
                for kid in kids:
                    self.children.pop(kid["id"])
            del self.parents[pid]
            self.writes.append(tombstone(self.orders_m, self.table, parent, self._v(), "cdc", 2**31))

    def expected(self, pid: int) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
        kids = {str(c["id"]): c for c in self.children.values() if c["order_id"] == pid}
        return self.parents.get(pid), kids


def _stored(client: Any, table: str, orders: TableMapper, pid: int) -> Any:
    key = orders.key({"id": pid, "user_id": 7})
    return client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")


def _as_found(item: Any, orders: TableMapper, items: EmbeddedMapper) -> tuple[Any, dict[str, Any]]:
    if item is None:
        return None, {}
    parent = None if is_tombstone(item) else orders.to_row(item)
    kids = {name: items.to_row(entry) for name, entry in live_entries(item, "items").items()}
    return parent, kids


@pytest.mark.parametrize("seed", range(6))
def test_any_order_and_any_replay_of_parent_and_child_writes_converges(dynamodb: Any, unique: str,
                                                                       seed: int) -> None:
    rnd = random.Random(seed)
    table = f"{unique}-shop"
    history = History(rnd, table)
    orders, items = history.orders_m, history.items_m
    ensure_tables(dynamodb, [TableSpec(table, "s.orders", orders.key_attributes)], create=True, stream=False)
    for _ in range(40):
        history.step()
    delivered = list(history.writes)
    rnd.shuffle(delivered)
    delivered += rnd.sample(history.writes, k=len(history.writes) // 3)  # replays after restarts
    applier = ConditionalApplier(dynamodb, mode=rnd.choice(("put", "transact")), concurrency=4)
    applier.start()
    try:
        for start in range(0, len(delivered), 7):
            results = applier.apply(delivered[start:start + 7])
            assert all(r.outcome != "rejected" for r in results), [r.error for r in results]
    finally:
        applier.close()
    for pid in (1, 2):
        parent, kids = history.expected(pid)
        found_parent, found_kids = _as_found(_stored(dynamodb, table, orders, pid), orders, items)
        assert found_parent == parent, f"seed {seed} order {pid}"
        assert found_kids == kids, f"seed {seed} order {pid}"


def test_a_child_event_older_than_its_parents_delete_does_not_come_back(dynamodb: Any, unique: str) -> None:
    """Parent deleted (children by cascade) and inserted again: a late replay of an old child
    insert must not resurrect that child in the new parent."""
    table = f"{unique}-shop"
    orders, items = _model()
    ensure_tables(dynamodb, [TableSpec(table, "s.orders", orders.key_attributes)], create=True, stream=False)
    parent = {"id": 1, "user_id": 7, "note": "a"}
    child = {"id": 5, "order_id": 1, "user_id": 7, "qty": 1}
    applier = ConditionalApplier(dynamodb, mode="put", concurrency=1)
    applier.start()
    try:
        applier.apply([upsert(orders, table, parent, 10, "cdc")])
        applier.apply([entry_write(items, table, child, 20, deleted=False)])
        applier.apply([tombstone(orders, table, parent, 30, "cdc", 2**31)])
        applier.apply([upsert(orders, table, {**parent, "note": "b"}, 40, "cdc")])
        (late,) = applier.apply([entry_write(items, table, child, 20, deleted=False)])
    finally:
        applier.close()
    assert late.outcome == "replayed"
    found_parent, found_kids = _as_found(_stored(dynamodb, table, orders, 1), orders, items)
    assert found_parent == {**parent, "note": "b"}
    assert found_kids == {}


def test_children_that_would_push_their_parent_past_400_kb_are_rejected_one_by_one(dynamodb: Any,
                                                                                   unique: str) -> None:
    """The writer dead-letters what DynamoDB rejects (the reason is DynamoDB's); the children that
    fit stay, and the combined write of the batch is split to tell which ones do not."""
    table = f"{unique}-shop"
    orders, _ = _model()
    settings = Settings(tables=[orders.mapping, {
        "source": "s.order_items", "embed": {"parent": "s.orders", "as": "items",
                                             "on": {"order_id": "id", "user_id": "user_id"}}}])
    items = EmbeddedMapper(TableMapper(settings.tables[1], (*ITEMS, ("pad", "mediumtext")), ("id",)), orders)
    ensure_tables(dynamodb, [TableSpec(table, "s.orders", orders.key_attributes)], create=True, stream=False)
    parent = {"id": 1, "user_id": 7, "note": "big"}
    # 150 KB each (a large TEXT column): two fit in the item, a third would take it past 400 KB
    big = [entry_write(items, table, {"id": n, "order_id": 1, "user_id": 7, "qty": n, "pad": "x" * 150_000},
                       100 + n, deleted=False) for n in range(1, 6)]
    applier = ConditionalApplier(dynamodb, mode="transact", concurrency=2)
    applier.start()
    try:
        applier.apply([upsert(orders, table, parent, 10, "cdc")])
        results = applier.apply(big)
    finally:
        applier.close()
    outcomes = sorted(r.outcome for r in results)
    assert len(results) == len(big)
    assert outcomes.count("applied") == 2 and outcomes.count("rejected") == 3, outcomes
    assert all("size" in r.error.lower() for r in results if r.outcome == "rejected"), \
        [r.error for r in results]
    item = _stored(dynamodb, table, orders, 1)
    assert len(live_entries(item, "items")) == 2

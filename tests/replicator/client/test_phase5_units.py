"""The phase-5 working set (pure: an in-memory DynamoDB side): versions of a row that moves."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import pytest

from replicator.client.phase5 import Phase5Batch
from replicator.errors import KeyShapeError
from replicator.events import with_generation
from replicator.mapping import DELETED_ATTR, ORIGIN_ATTR, TTL_ATTR, VERSION_ATTR, TableMapper
from replicator.mapping.embedded import EmbeddedMapper
from replicator.mapping.names import PARENT_DELETED_ATTR, REVISION_ATTR
from replicator.settings import EmbedSpec, KeySpec, TableMapping

COLS = (("id", "bigint(20)"), ("user_id", "int(11)"), ("note", "text"))
GENERATION = 3


class Items:
    """``DynamoSide.get`` over a dict."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}

    def get(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        return self.items.get(json.dumps([table, key], sort_keys=True))

    def put(self, table: str, item: dict[str, Any], key: dict[str, Any]) -> None:
        self.items[json.dumps([table, key], sort_keys=True)] = item


def orders() -> Any:
    mapper = TableMapper(TableMapping(source="shop.orders", target="shop",
                                      key=KeySpec(pk="USER#{user_id}", sk="ORDER#{id:08d}")), COLS, ("id",))
    mapper.validate()
    return SimpleNamespace(mapper=mapper, target="p-shop", source="shop.orders", children={}, embedded=None,
                           parent=None)


def test_both_halves_of_a_moved_row_carry_one_version_the_higher_of_the_two() -> None:
    table, side = orders(), Items()
    row = {"id": 7, "user_id": 3, "note": "x"}
    # The old item's version is far ahead of the clock (an earlier generation's writes were
    # many), so its next version is above the new item's: the two would differ.
    ahead = with_generation(GENERATION, time.time_ns() // 1000 + 10**9)
    key = table.mapper.key(row)
    side.put("p-shop", table.mapper.to_item(row, metadata={VERSION_ATTR: {"N": str(ahead)}}), key)
    batch = Phase5Batch(side, tombstone_ttl_s=60, generation=GENERATION)  # type: ignore[arg-type]
    assert batch.update(table, key, {"user_id": 5}) == 1
    puts = batch.puts()
    assert sorted(p.op for p in puts) == ["delete", "insert"]
    tombstone = next(p for p in puts if p.op == "delete")
    moved = next(p for p in puts if p.op == "insert")
    assert tombstone.item[DELETED_ATTR] == {"BOOL": True} and tombstone.expected == ahead
    assert moved.item["pk"] == {"S": "USER#5"} and moved.expected is None
    assert tombstone.version == moved.version == ahead + 1
    assert tombstone.item[VERSION_ATTR] == moved.item[VERSION_ATTR] == {"N": str(ahead + 1)}


def test_rows_that_do_not_move_keep_versions_of_their_own() -> None:
    table, side = orders(), Items()
    ahead = with_generation(GENERATION, time.time_ns() // 1000 + 10**9)
    first = {"id": 7, "user_id": 3, "note": "x"}
    side.put("p-shop", table.mapper.to_item(first, metadata={VERSION_ATTR: {"N": str(ahead)}}),
             table.mapper.key(first))
    batch = Phase5Batch(side, tombstone_ttl_s=60, generation=GENERATION)  # type: ignore[arg-type]
    batch.update(table, table.mapper.key(first), {"note": "y"})
    batch.insert(table, {"id": 8, "user_id": 3, "note": "z"})
    versions = {p.item["sk"]["S"]: p.version for p in batch.puts()}
    assert versions["ORDER#00000007"] == ahead + 1
    assert versions["ORDER#00000008"] < ahead


# --------------------------------------------------------------------------- embedded children

ITEM_COLS = (("id", "bigint(20)"), ("order_id", "bigint(20)"), ("user_id", "int(11)"), ("sku", "text"))


def aggregate() -> tuple[Any, Any]:
    """orders (keyed under their user) with their items embedded as ``items``."""
    parent = orders()
    child_mapping = TableMapping(source="shop.order_items", embed=EmbedSpec.model_validate(
        {"parent": "shop.orders", "as": "items", "on": {"order_id": "id", "user_id": "user_id"}}))
    child_mapper = TableMapper(child_mapping, ITEM_COLS, ("id",))
    embedded = EmbeddedMapper(child_mapper, parent.mapper)
    embedded.validate()
    child = SimpleNamespace(mapper=child_mapper, target="p-shop", source="shop.order_items", children={},
                            embedded=embedded, parent=parent)
    parent.children = {"items": child}
    return parent, child


def stored_order(side: Items, parent: Any, child: Any, order: dict[str, Any], version: int,
                 items: dict[int, int], revision: int = 4) -> None:
    """An order item as the writer leaves it: its row, its entries (id -> version), a revision."""
    item = parent.mapper.to_item(order, metadata={VERSION_ATTR: {"N": str(version)}})
    entries = {str(i): {"M": child.embedded.entry(
        {"id": i, "order_id": order["id"], "user_id": order["user_id"], "sku": f"s{i}"}, v)}
        for i, v in items.items()}
    item["items"] = {"M": entries}
    item[REVISION_ATTR] = {"N": str(revision)}
    side.put("p-shop", item, parent.mapper.key(order))


def test_a_child_written_in_phase_5_puts_its_parents_item_back_under_its_revision() -> None:
    parent, child, side = *aggregate(), Items()
    order = {"id": 7, "user_id": 3, "note": "x"}
    stored_order(side, parent, child, order, 100, {1: 100, 2: 150})
    batch = Phase5Batch(side, tombstone_ttl_s=60, generation=GENERATION)  # type: ignore[arg-type]
    batch.entry_insert(child, {"id": 3, "order_id": 7, "user_id": 3, "sku": "new"})
    assert batch.entry_update(child, {"id": 1, "order_id": 7, "user_id": 3}, {"sku": "changed"}) == 1
    (put,) = batch.puts()
    assert put.request()["ConditionExpression"] == "#rev = :rev"
    assert put.request()["ExpressionAttributeValues"] == {":rev": {"N": "4"}}
    item = put.item
    assert item[VERSION_ATTR] == {"N": "100"} and item["note"] == {"S": "x"}  # the parent as it was
    assert item[REVISION_ATTR] == {"N": "5"}
    entries = item["items"]["M"]
    assert entries["2"]["M"][VERSION_ATTR] == {"N": "150"} and ORIGIN_ATTR not in entries["2"]["M"]
    for name, sku in (("1", "changed"), ("3", "new")):
        assert entries[name]["M"]["sku"] == {"S": sku}
        assert entries[name]["M"][ORIGIN_ATTR] == {"S": "app"}
        assert int(entries[name]["M"][VERSION_ATTR]["N"]) > 150


def test_a_parent_deleted_in_phase_5_takes_its_children() -> None:
    parent, child, side = *aggregate(), Items()
    order = {"id": 7, "user_id": 3, "note": "x"}
    stored_order(side, parent, child, order, 100, {1: 100, 2: 150})
    batch = Phase5Batch(side, tombstone_ttl_s=60, generation=GENERATION)  # type: ignore[arg-type]
    assert batch.delete(parent, parent.mapper.key(order)) == 1
    assert batch.entry_current(child, {"id": 1, "order_id": 7, "user_id": 3}) is None
    (put,) = batch.puts()
    assert put.op == "delete"
    assert put.item[DELETED_ATTR] == {"BOOL": True} and put.item["items"] == {"M": {}}
    assert put.item[PARENT_DELETED_ATTR] == put.item[VERSION_ATTR] and TTL_ATTR in put.item
    assert "note" not in put.item


def test_a_child_moved_to_another_parent_leaves_at_one_version_with_its_arrival() -> None:
    parent, child, side = *aggregate(), Items()
    ahead = with_generation(GENERATION, time.time_ns() // 1000 + 10**9)
    stored_order(side, parent, child, {"id": 7, "user_id": 3, "note": "x"}, 100, {1: ahead})
    stored_order(side, parent, child, {"id": 8, "user_id": 3, "note": "y"}, 100, {})
    batch = Phase5Batch(side, tombstone_ttl_s=60, generation=GENERATION)  # type: ignore[arg-type]
    assert batch.entry_update(child, {"id": 1, "order_id": 7, "user_id": 3}, {"order_id": 8}) == 1
    puts = {p.item["sk"]["S"]: p.item["items"]["M"] for p in batch.puts()}
    left, arrived = puts["ORDER#00000007"]["1"]["M"], puts["ORDER#00000008"]["1"]["M"]
    assert left[DELETED_ATTR] == {"BOOL": True} and arrived["order_id"] == {"N": "8"}
    assert left[VERSION_ATTR] == arrived[VERSION_ATTR] == {"N": str(ahead + 1)}


def test_a_parent_with_children_cannot_change_its_key_columns() -> None:
    parent, child, side = *aggregate(), Items()
    order = {"id": 7, "user_id": 3, "note": "x"}
    stored_order(side, parent, child, order, 100, {1: 100})
    batch = Phase5Batch(side, tombstone_ttl_s=60, generation=GENERATION)  # type: ignore[arg-type]
    with pytest.raises(KeyShapeError, match="embedded children"):
        batch.update(parent, parent.mapper.key(order), {"user_id": 4})
    assert batch.update(parent, parent.mapper.key(order), {"note": "z"}) == 1


def test_a_child_deleted_in_phase_5_leaves_a_tombstone_that_expires_and_expired_ones_are_dropped() -> None:
    # Entry tombstones are kept as long as item tombstones (dynamodb.tombstone_ttl_s), then go:
    # a whole-item write of the phase-5 client leaves the expired ones out.
    parent, child, side = *aggregate(), Items()
    order = {"id": 7, "user_id": 3, "note": "x"}
    stored_order(side, parent, child, order, 100, {1: 100, 2: 150})
    stored = side.get("p-shop", parent.mapper.key(order))
    assert stored is not None
    stored["items"]["M"]["8"] = {"M": child.embedded.entry_tombstone(120, int(time.time()) - 5)}  # expired
    stored["items"]["M"]["9"] = {"M": child.embedded.entry_tombstone(130, int(time.time()) + 3600)}
    batch = Phase5Batch(side, tombstone_ttl_s=60, generation=GENERATION)  # type: ignore[arg-type]
    assert batch.entry_delete(child, {"id": 1, "order_id": 7, "user_id": 3}) == 1
    (put,) = batch.puts()
    entries = put.item["items"]["M"]
    assert sorted(entries) == ["1", "2", "9"]
    gone = entries["1"]["M"]
    assert gone[DELETED_ATTR] == {"BOOL": True}
    assert time.time() + 50 < int(gone[TTL_ATTR]["N"]) <= time.time() + 61

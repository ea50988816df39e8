"""The phase-5 working set (pure: an in-memory DynamoDB side): versions of a row that moves."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

from replicator.client.phase5 import Phase5Batch
from replicator.events import with_generation
from replicator.mapping import DELETED_ATTR, VERSION_ATTR, TableMapper
from replicator.settings import KeySpec, TableMapping

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
    return SimpleNamespace(mapper=mapper, target="p-shop", source="shop.orders")


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

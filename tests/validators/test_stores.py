"""The validator's reads of embedded children, on a fake DynamoDB client (pure logic)."""

from __future__ import annotations

from typing import Any

from replicator.catalog import TableShape
from replicator.events import Row
from replicator.settings import load_settings
from validators.stores import Stores

ORDERS = TableShape("db", "orders", (("id", "int(11)"), ("user_id", "int(11)")), ("id",))
ITEMS = TableShape("db", "order_items", (("id", "int(11)"), ("order_id", "int(11)"), ("user_id", "int(11)"),
                                         ("qty", "int(11)")), ("id",))


class FakeSource:
    def table_shape(self, db: str, table: str) -> TableShape:
        return {"orders": ORDERS, "order_items": ITEMS}[table]


class FakeDynamoDB:
    def __init__(self, item: dict[str, Any]) -> None:
        self.item = item

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        (table,) = RequestItems
        return {"Responses": {table: [self.item]}}


def stores(item: dict[str, Any]) -> Stores:
    settings = load_settings(tables=[
        {"source": "db.orders", "target": "shop", "key": {"pk": "USER#{user_id}", "sk": "ORDER#{id}"}},
        {"source": "db.order_items", "embed": {"parent": "db.orders", "as": "items",
                                               "on": {"order_id": "id", "user_id": "user_id"}}}])
    return Stores(settings, FakeDynamoDB(item), source=FakeSource())  # type: ignore[arg-type]


KEY = {"pk": {"S": "USER#3"}, "sk": {"S": "ORDER#7"}}
IMAGE: Row = {"id": 1, "order_id": 7, "user_id": 3, "qty": 2}


def test_an_entry_its_parents_delete_took_is_as_new_as_that_delete() -> None:
    # The parent's delete at version 900 removed the entry: the child's state is "absent since
    # 900", which the lag-aware comparison needs to tell a later change from a lost row.
    found = stores({**KEY, "_deleted": {"BOOL": True}, "_pdel": {"N": "900"}, "items": {"M": {}}}).dynamodb(
        "db.order_items", [IMAGE])
    assert {k: (v.row, v.version) for k, v in found.items()} == {"id=1": (None, 900)}


def test_an_entry_that_is_not_there_without_a_parents_delete_is_absent() -> None:
    found = stores({**KEY, "id": {"N": "7"}, "user_id": {"N": "3"}, "_version": {"N": "50"},
                    "items": {"M": {}}}).dynamodb("db.order_items", [IMAGE])
    assert found == {}


def test_a_live_entry_keeps_its_own_version() -> None:
    entry = {"M": {"id": {"N": "1"}, "order_id": {"N": "7"}, "user_id": {"N": "3"}, "qty": {"N": "2"},
                   "_version": {"N": "950"}}}
    item = {**KEY, "_pdel": {"N": "900"}, "items": {"M": {"1": entry}}}
    found = stores(item).dynamodb("db.order_items", [IMAGE])
    assert found["id=1"].version == 950 and found["id=1"].row == IMAGE

"""Tombstone entries of embedded children carry an expiry, as item tombstones do (pure)."""

from __future__ import annotations

from replicator.events import ChangeEvent, Op, Position, Row, TxInfo
from replicator.mapping import TableMapper
from replicator.mapping.conditional import writes_for_event
from replicator.mapping.embedded import EmbeddedMapper, expired_entries, parent_delete
from replicator.settings import Settings

ORDERS = (("id", "int"), ("user_id", "int"))
ITEMS = (("id", "int"), ("order_id", "int"), ("user_id", "int"), ("qty", "int"))


def _items() -> EmbeddedMapper:
    settings = Settings(tables=[
        {"source": "s.orders", "target": "shop", "key": {"pk": "USER#{user_id}", "sk": "ORDER#{id}"}},
        {"source": "s.order_items", "embed": {"parent": "s.orders", "as": "items",
                                               "on": {"order_id": "id", "user_id": "user_id"}}}])
    items = EmbeddedMapper(TableMapper(settings.tables[1], ITEMS, ("id",)),
                           TableMapper(settings.tables[0], ORDERS, ("id",)))
    items.validate()
    return items


def _event(op: Op, row: Row, before: Row | None = None) -> ChangeEvent:
    return ChangeEvent(op, "s", "order_items", {"id": row["id"]}, row if op == "d" else before,
                       None if op == "d" else row, Position("mysql-bin.000001", 4), 500, 0, TxInfo("t", 0),
                       "x")


def test_a_child_delete_and_the_old_half_of_a_move_expire_after_the_tombstone_ttl() -> None:
    row = {"id": 1, "order_id": 7, "user_id": 3, "qty": 2}
    (gone,) = writes_for_event(_items(), "shop", _event("d", row), now=1000.0, tombstone_ttl_s=60)
    assert gone.entry is not None and gone.entry.value["_ttl"] == {"N": "1060"}
    old, new = writes_for_event(_items(), "shop", _event("u", {**row, "order_id": 8}, row), now=1000.0,
                                tombstone_ttl_s=60)
    assert old.entry is not None and old.entry.value["_deleted"] == {"BOOL": True}
    assert old.entry.value["_ttl"] == {"N": "1060"}
    assert new.entry is not None and "_ttl" not in new.entry.value


def test_only_tombstones_past_their_ttl_are_expired() -> None:
    items = _items()
    item = {"items": {"M": {
        "1": {"M": items.entry({"id": 1, "order_id": 7, "user_id": 3, "qty": 2}, 10)},
        "2": {"M": items.entry_tombstone(20, 999)},
        "3": {"M": items.entry_tombstone(30, 1001)},
        "4": {"M": {"_version": {"N": "40"}, "_deleted": {"BOOL": True}}},  # written before _ttl: kept
    }}}
    assert expired_entries(item, "items", 1000.0) == {"2": 20}


def test_a_parent_delete_leaves_out_expired_tombstone_entries_newer_than_itself() -> None:
    items = _items()
    stored = {"pk": {"S": "USER#3"}, "sk": {"S": "ORDER#7"}, "_version": {"N": "50"}, "_rev": {"N": "4"},
              "items": {"M": {"1": {"M": items.entry({"id": 1, "order_id": 7, "user_id": 3, "qty": 2}, 80)},
                              "2": {"M": items.entry_tombstone(90, 999)},
                              "3": {"M": items.entry_tombstone(95, 5000)}}}}
    key = {"pk": {"S": "USER#3"}, "sk": {"S": "ORDER#7"}}
    put = parent_delete(stored, "shop", key, {**key, "_deleted": {"BOOL": True}}, 60, ("items",), now=1000.0)
    assert isinstance(put, dict)
    assert sorted(put["Item"]["items"]["M"]) == ["1", "3"]

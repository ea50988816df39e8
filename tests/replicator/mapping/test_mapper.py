"""TableMapper: keys, config validation, typed errors, and the conditional write requests."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from replicator.errors import ConfigError, ItemTooLargeError, MappingError, MissingKeyError
from replicator.events import ChangeEvent, Position, Temporal, TxInfo
from replicator.mapping import (
    CONDITION,
    DELETED_ATTR,
    ORIGIN_ATTR,
    TTL_ATTR,
    VERSION_ATTR,
    TableMapper,
    is_tombstone,
    writes_for_event,
)
from replicator.settings import KeySpec, TableMapping

COLS = (("id", "int(11)"), ("email", "varchar(255)"), ("hash", "binary(8)"), ("notes", "text"),
        ("created", "datetime(3)"))


def mapper(**kw: Any) -> TableMapper:
    return TableMapper(TableMapping(source="shop.users", **kw), COLS, ("id",))


def row(**kw: Any) -> dict[str, Any]:
    base = {"id": 7, "email": "a@b.c", "hash": b"\x01\x02", "notes": None,
            "created": Temporal("datetime", "2024-01-31T10:00:00.123")}
    base.update(kw)
    return base


def test_default_key_is_the_primary_key_column_with_its_own_type() -> None:
    assert mapper().key(row()) == {"id": {"N": "7"}}


def test_key_templates_render_column_values() -> None:
    m = mapper(key=KeySpec(pk="USER#{id}", sk="EMAIL#{email}"))
    assert m.key(row()) == {"pk": {"S": "USER#7"}, "sk": {"S": "EMAIL#a@b.c"}}


def test_two_column_primary_key_becomes_hash_and_range() -> None:
    m = TableMapper(TableMapping(source="shop.lines"), (("order", "int"), ("line", "int")), ("order", "line"))
    assert [(a.name, a.role, a.type) for a in m.key_attributes] == [
        ("order", "HASH", "N"), ("line", "RANGE", "N")]


def test_binary_values_are_padded_to_the_column_width() -> None:
    assert mapper().to_item(row())["hash"] == {"B": b"\x01\x02" + b"\0" * 6}


def test_null_is_explicit_by_default_and_omitted_on_request() -> None:
    assert mapper().to_item(row())["notes"] == {"NULL": True}
    assert "notes" not in mapper(null_mode="omit").to_item(row())


def test_rename_and_exclude_shape_the_item() -> None:
    item = mapper(rename={"email": "mail"}, exclude=("notes",)).to_item(row())
    assert "mail" in item and "email" not in item and "notes" not in item


@pytest.mark.parametrize(("kw", "fragment"), [
    ({"key": KeySpec(pk="USER#{uid}")}, "unknown column(s) ['uid']"),
    ({"exclude": ("nope",)}, "exclude names unknown column"),
    ({"rename": {"email": "_version"}}, "reserved attribute"),
    ({"types": {"email": "bool"}}, "does not apply"),
    ({"key": KeySpec(sk="X")}, "without key.pk"),
    ({"exclude": ("id",)}, "removes key column"),
])
def test_bad_config_is_a_config_error_naming_the_option(kw: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=r"tables\[source=shop.users\]") as info:
        mapper(**kw).validate()
    assert fragment in str(info.value)


def test_a_valid_config_passes_validation() -> None:
    mapper(key=KeySpec(pk="USER#{id}", sk="PROFILE"), rename={"email": "mail"}).validate()


def test_null_key_is_a_missing_key_error_naming_table_key_and_reason() -> None:
    with pytest.raises(MissingKeyError) as info:
        mapper(key=KeySpec(pk="USER#{email}")).key(row(email=""))
    assert (info.value.table, info.value.reason) == ("shop.users", "null-or-empty-key")
    assert "shop.users" in str(info.value) and "id=7" in str(info.value)


def test_template_naming_a_column_missing_from_the_row_is_a_mapping_error() -> None:
    r = row()
    del r["email"]
    with pytest.raises(MissingKeyError, match=r"template-column-missing|does not have"):
        mapper(key=KeySpec(pk="{email}")).key(r)


def test_item_over_400_kb_is_an_item_too_large_error() -> None:
    with pytest.raises(ItemTooLargeError) as info:
        mapper().to_item(row(notes="x" * 410_000))
    assert info.value.reason == "item-too-large" and info.value.key == "id=7"


def test_boolean_override_refuses_values_other_than_0_and_1() -> None:
    m = TableMapper(TableMapping(source="s.t", types={"f": "bool"}), (("id", "int"), ("f", "tinyint(1)")),
                    ("id",))
    with pytest.raises(MappingError, match="not-a-boolean"):
        m.to_item({"id": 1, "f": 2})


def test_wide_decimals_keep_their_exact_text() -> None:
    m = TableMapper(TableMapping(source="s.t"), (("id", "int"), ("d", "decimal(65,30)")), ("id",))
    value = Decimal("12345678901234567890123456789012345.123456789012345678901234567890")
    assert m.to_item({"id": 1, "d": value})["d"] == {"S": str(value)}


def _event(op: str, before: dict[str, Any] | None, after: dict[str, Any] | None,
           version: int = 100) -> ChangeEvent:
    image = after or before or {}
    return ChangeEvent(op=op, db="shop", table="users", pk={"id": image["id"]}, before=before,  # type: ignore[arg-type]
                       after=after, pos=Position("bin.000001", 4), version=version, ts_ms=0,
                       tx=TxInfo("t", 0), schema="s", columns=COLS)


def test_an_upsert_is_conditional_on_a_lower_stored_version() -> None:
    (w,) = writes_for_event(mapper(), "p-users", _event("c", None, row()), now=1000, tombstone_ttl_s=60)
    params = w.put_item_params()
    assert params["ConditionExpression"] == CONDITION
    assert params["ExpressionAttributeValues"] == {":v": {"N": "100"}}
    assert w.item[VERSION_ATTR] == {"N": "100"} and w.item[ORIGIN_ATTR] == {"S": "cdc"}


def test_a_delete_is_a_tombstone_with_ttl_and_no_row_data() -> None:
    (w,) = writes_for_event(mapper(), "p-users", _event("d", row(), None), now=1000, tombstone_ttl_s=60)
    assert w.tombstone and is_tombstone(w.item)
    assert w.item[DELETED_ATTR] == {"BOOL": True} and w.item[TTL_ATTR] == {"N": "1060"}
    assert set(w.item) == {"id", VERSION_ATTR, ORIGIN_ATTR, DELETED_ATTR, TTL_ATTR, "_table"}
    assert w.item["_table"] == {"S": "shop.users"}


def test_snapshot_rows_carry_the_snapshot_origin() -> None:
    (w,) = writes_for_event(mapper(), "p-users", _event("r", None, row()), now=0, tombstone_ttl_s=60)
    assert w.item[ORIGIN_ATTR] == {"S": "snapshot"}


def test_an_update_that_changes_a_templated_key_moves_the_item() -> None:
    m = mapper(key=KeySpec(pk="EMAIL#{email}"))
    moved = _event("u", row(), row(email="new@b.c"))
    writes = writes_for_event(m, "p-users", moved, now=0, tombstone_ttl_s=60)
    assert [(w.tombstone, w.key["pk"]["S"]) for w in writes] == [
        (True, "EMAIL#a@b.c"), (False, "EMAIL#new@b.c")]


def test_a_float_column_value_reads_back_as_its_shortest_decimal() -> None:
    m = TableMapper(TableMapping(source="s.t"), (("id", "int"), ("f", "float")), ("id",))
    item = m.to_item({"id": 1, "f": 0.1})
    assert item["f"] == {"N": "0.1"} and m.to_row(item)["f"] == 0.1

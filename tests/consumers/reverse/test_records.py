"""One stream record -> an upsert, a delete, a dead letter or a skip (pure; no stack)."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

import pytest

from consumers.reverse.model import Change, Rejected, Skipped
from consumers.reverse.pages import coalesce
from consumers.reverse.plan import TablePlan, sql_value
from consumers.reverse.records import (
    ChildRoute,
    Route,
    Target,
    check_reversible,
    check_shared,
    translate,
    translate_all,
    write_time,
)
from replicator.errors import ConfigError
from replicator.events import JsonDoc, Row, Temporal
from replicator.mapping import ORIGIN_APP, ORIGIN_CDC, ORIGIN_SNAPSHOT, TableMapper
from replicator.mapping.coltypes import parse_column_type
from replicator.mapping.conditional import metadata
from replicator.mapping.embedded import EmbeddedMapper
from replicator.mapping.names import TABLE_ATTR
from replicator.settings import TableMapping
from tests.consumers.reverse.fakes import app_version, item, record, target, tomb, users_plan

NOW = float(int(time.time()))
V = app_version(NOW)

MANY = (("id", "bigint(20) unsigned"), ("d", "decimal(12,3)"), ("f", "float"), ("g", "double"),
        ("s", "varchar(20)"), ("e", "enum('a','b')"), ("st", "set('x','y','z')"), ("b", "binary(4)"),
        ("vb", "varbinary(8)"), ("dt", "datetime(6)"), ("ts", "timestamp(3)"), ("t", "time(2)"),
        ("day", "date"), ("j", "json"), ("y", "year(4)"), ("bits", "bit(10)"))


def many_plan() -> TablePlan:
    mapper = TableMapper(TableMapping(source="db.many"), MANY, ("id",))
    mapper.validate()
    return TablePlan(mapper)


def test_an_application_put_becomes_an_upsert_of_every_mapped_column_in_pymysql_shape() -> None:
    plan = many_plan()
    row: dict[str, Any] = {
        "id": 2**64 - 1, "d": Decimal("-12.500"), "f": 1.2345678, "g": 0.1, "s": "Zoë", "e": "b",
        "st": frozenset({"z", "x"}), "b": b"\x01", "vb": b"\x00\xff",
        "dt": Temporal("datetime", "2024-02-29T23:59:59.000001"),
        "ts": Temporal("timestamp", "2024-01-01T00:00:00.125Z"), "t": Temporal("time", "-838:59:58.50"),
        "day": Temporal("date", "0000-00-00"), "j": JsonDoc({"a": [1, None, "é"]}), "y": 2155, "bits": 1023,
    }
    change = translate(record(1, plan.mapper.key(row), item(plan, row, V)), target(plan, name="many"))
    assert isinstance(change, Change) and change.op == "upsert"
    assert dict(zip(plan.columns, change.params, strict=True)) == {
        "id": 2**64 - 1, "d": Decimal("-12.500"), "f": 1.2345678, "g": 0.1, "s": "Zoë", "e": "b",
        "st": "x,z", "b": b"\x01\x00\x00\x00", "vb": b"\x00\xff",
        "dt": dt.datetime(2024, 2, 29, 23, 59, 59, 1), "ts": dt.datetime(2024, 1, 1, 0, 0, 0, 125000),
        "t": -dt.timedelta(hours=838, minutes=59, seconds=58.5),
        "day": "0000-00-00", "j": '{"a": [1, null, "é"]}', "y": 2155, "bits": b"\x03\xff",
    }
    assert change.pk == (2**64 - 1,) and change.key_text == f"id={2**64 - 1}"
    assert change.version == V and change.written_at == pytest.approx(NOW)


def test_float_goes_as_the_stored_single_not_as_its_six_digit_text() -> None:
    assert sql_value(parse_column_type("float"), 1.2345678) == 1.2345678


@pytest.mark.parametrize("origin", [ORIGIN_CDC, ORIGIN_SNAPSHOT, None])
def test_records_not_written_by_the_application_are_skipped(origin: str | None) -> None:
    plan = users_plan()
    row: Row = {"id": 1, "email": "a", "n": 1}
    image = item(plan, row, 5, origin or "x")
    if origin is None:
        del image["_origin"]
    out = translate(record(1, plan.mapper.key(row), image), target(plan))
    assert out == Skipped(f"origin_{origin or 'none'}")


def test_a_tombstone_is_a_delete_by_primary_key_from_the_old_image() -> None:
    plan = users_plan()
    row: Row = {"id": 7, "email": "a", "n": 1}
    old = item(plan, row, V - 1)
    out = translate(record(3, plan.mapper.key(row), tomb(plan, row, V), old=old), target(plan))
    assert isinstance(out, Change)
    assert (out.op, out.pk, out.params, out.key_text) == ("delete", (7,), (7,), "id=7")


def test_a_tombstone_without_a_live_old_image_reads_the_key_back() -> None:
    plan = users_plan(key={"pk": "USER#{id}"})
    row: Row = {"id": 7, "email": "a", "n": 1}
    out = translate(record(3, plan.mapper.key(row), tomb(plan, row, V)), target(plan))
    assert isinstance(out, Change) and (out.op, out.pk) == ("delete", (7,))


def test_remove_of_a_live_application_item_deletes_and_remove_of_a_tombstone_is_skipped() -> None:
    plan = users_plan()
    row: Row = {"id": 7, "email": "a", "n": 1}
    keys = plan.mapper.key(row)
    removed = translate(record(4, keys, None, old=item(plan, row, V)), target(plan))
    assert isinstance(removed, Change) and removed.op == "delete"
    expired = translate(record(5, keys, None, old=tomb(plan, row, V)), target(plan))
    assert expired == Skipped("tombstone_expired")
    assert translate(record(6, keys, None, old=item(plan, row, 5, ORIGIN_CDC)), target(plan)) == \
        Skipped("origin_cdc")


def test_on_a_shared_table_each_item_goes_to_the_source_whose_key_template_made_it() -> None:
    users = users_plan("shop.users", key={"pk": "USER#{id}"})
    admins = users_plan("shop.admins", key={"pk": "ADMIN#{id}"})
    shared = target(users, admins, name="shared")
    row: Row = {"id": 1, "email": "a", "n": 1}
    a = translate(record(1, admins.mapper.key(row), item(admins, row, V)), shared)
    u = translate(record(2, users.mapper.key(row), item(users, row, V)), shared)
    assert isinstance(a, Change) and a.source == "shop.admins"
    assert isinstance(u, Change) and u.source == "shop.users"
    other = translate(record(3, {"pk": {"S": "ORDER#1"}}, {"pk": {"S": "ORDER#1"}, "_origin": {"S": "app"}}),
                      shared)
    assert other == Skipped("not_mapped")


def test_an_attribute_without_a_column_is_a_dead_letter() -> None:
    plan = users_plan()
    row: Row = {"id": 1, "email": "a", "n": 1}
    image = {**item(plan, row, V), "nickname": {"S": "x"}}
    out = translate(record(1, plan.mapper.key(row), image), target(plan))
    assert isinstance(out, Rejected) and out.reason == "attribute_without_column" and out.key_text == "id=1"
    assert "nickname" in out.message


def test_a_value_mysql_would_round_in_silence_is_a_dead_letter_naming_the_rule() -> None:
    plan = many_plan()
    assert plan.fit_columns == ("d", "dt", "ts", "t", "y")
    row: Row = {"id": 1}
    image = item(plan, row, V)
    image["ts"] = {"S": "2024-01-01T00:00:00.1234Z"}  # TIMESTAMP(3): MySQL would round it, no error
    out = translate(record(1, plan.mapper.key(row), image), target(plan, name="many"))
    assert isinstance(out, Rejected) and out.pk == (1,) and "'ts'" in out.message
    assert out.reason not in ("", "undecodable")


def test_reading_an_item_in_one_pass_gives_what_the_mappings_inverse_gives() -> None:
    plan = many_plan()
    row: Row = {"id": 3, "d": Decimal("2.500"), "s": "x", "st": frozenset({"y"}), "j": JsonDoc([1]),
                "dt": Temporal("datetime", "2024-01-01T00:00:00.000000"), "bits": 5, "f": 0.5}
    image = item(plan, row, V)
    got, params = plan.read_item(image)
    assert got == plan.mapper.to_row(image) and params == plan.row_params(got)


def test_an_item_whose_columns_disagree_with_its_key_is_a_dead_letter() -> None:
    plan = users_plan(key={"pk": "USER#{id}"})
    one: Row = {"id": 1, "email": "a", "n": 1}
    image = item(plan, one, V)
    image["id"] = {"N": "2"}
    out = translate(record(1, {"pk": {"S": "USER#1"}}, image), target(plan))
    assert isinstance(out, Rejected) and out.reason == "key_mismatch"


def test_coalescing_keeps_each_rows_last_change_in_stream_order() -> None:
    plan = users_plan()
    rows: list[Row] = [{"id": k, "email": "e", "n": i} for i, k in enumerate([1, 2, 1, 3, 2])]
    recs = [record(i, plan.mapper.key(r), item(plan, r, V + i)) for i, r in enumerate(rows)]
    entries, superseded, skipped = coalesce(translate(r, target(plan)) for r in recs)
    kept = [(e.pk, e.params[2]) for e in entries if isinstance(e, Change)]
    assert kept == [((1,), 2), ((3,), 3), ((2,), 4)]
    assert superseded == 2 and skipped == []


def test_the_write_time_comes_from_the_versions_microseconds_when_plausible() -> None:
    assert write_time(app_version(NOW + 0.25), NOW) == pytest.approx(NOW + 0.25)
    assert write_time(1 << 60 | int((NOW + 0.5) * 1e6), NOW) == pytest.approx(NOW + 0.5)
    assert write_time(12345, NOW) == NOW  # a binlog version: not a time


def test_a_mapping_that_cannot_be_written_back_by_primary_key_is_refused() -> None:
    check_reversible(users_plan(key={"pk": "USER#{email}"}))  # rows are read from the items
    with pytest.raises(ConfigError, match="removes primary-key column"):
        check_reversible(users_plan(key={"pk": "USER#{id}"}, exclude=("id",)))
    with pytest.raises(ConfigError, match="has no key template"):
        check_shared(target(users_plan("a.users"), users_plan("a.admins"), name="shared"))
    check_reversible(users_plan(key={"pk": "USER#{id}"}))


def test_the_sql_of_a_plan() -> None:
    plan = users_plan()
    assert plan.upsert_sql == ("INSERT INTO `shop`.`users` (`id`, `email`, `n`) VALUES (%s, %s, %s) "
                               "ON DUPLICATE KEY UPDATE `email` = VALUES(`email`), `n` = VALUES(`n`)")
    assert plan.delete_sql == "DELETE FROM `shop`.`users` WHERE `id` = %s"
    assert plan.update_sql == "UPDATE `shop`.`users` SET `email` = %s, `n` = %s WHERE `id` = %s"
    assert plan.update_params((1, "a", 2)) == ("a", 2, 1)
    assert plan.existing_sql(2) == "SELECT `id` FROM `shop`.`users` WHERE `id` IN (%s, %s) FOR UPDATE"


def test_a_padded_key_template_reads_back() -> None:
    plan = users_plan(key={"pk": "USER#{id:010d}"})
    check_reversible(plan)
    assert plan.mapper.key({"id": 42, "email": "a@b.c", "name": None})["pk"]["S"] == "USER#0000000042"


# --------------------------------------------------------------------------- keys over other columns


ORDER_COLS = (("id", "int(11)"), ("user_id", "int(11)"), ("day", "date"), ("n", "int(11)"))


def orders_plan() -> TablePlan:
    mapper = TableMapper(TableMapping(source="shop.orders", target="shop",
                                      key={"pk": "USER#{user_id}", "sk": "ORDER#{day:%Y-%m-%d}#{id}"}),
                         ORDER_COLS, ("id",))
    mapper.validate()
    return TablePlan(mapper)


def order(**over: Any) -> Row:
    r: Row = {"id": 7, "user_id": 3, "day": Temporal("date", "2026-11-27"), "n": 1}
    r.update(over)
    return r


def test_a_row_keyed_by_other_columns_is_read_from_its_item_and_deleted_from_its_old_image() -> None:
    plan = orders_plan()
    check_reversible(plan)
    shop = target(plan, name="shop")
    moved = order(user_id=5)
    up = translate(record(1, plan.mapper.key(moved), item(plan, moved, V)), shop)
    assert isinstance(up, Change) and up.op == "upsert" and up.pk == (7,)
    assert dict(zip(plan.columns, up.params, strict=True))["user_id"] == 5
    old = order()
    gone = translate(record(2, plan.mapper.key(old), tomb(plan, old, V), item(plan, old, V - 5)), shop)
    assert isinstance(gone, Change) and gone.op == "delete" and gone.pk == (7,) and gone.version == V
    # No live old image: the key (user, date, id) does not read back as a row, nothing to delete.
    assert translate(record(3, plan.mapper.key(old), tomb(plan, old, V)), shop) == Skipped("delete_of_absent")


def test_an_item_naming_its_table_goes_to_that_source_even_where_another_template_matches() -> None:
    users = users_plan("shop.users", target="shop", key={"pk": "USER#{id}", "sk": "{email}"})
    plan = orders_plan()
    shop = target(users, plan, name="shop")
    row = order(day=Temporal("date", "2026-01-02"))
    it = plan.mapper.to_item(row, metadata=metadata(V, ORIGIN_APP, "shop.orders"))
    assert users.mapper.key({"id": 3, "email": "ORDER#2026-01-02#7", "n": 0}) == plan.mapper.key(row)
    got = translate(record(1, plan.mapper.key(row), it), shop)
    assert isinstance(got, Change) and got.source == "shop.orders"
    it[TABLE_ATTR] = {"S": "shop.carts"}  # a source this process does not map
    assert translate(record(2, plan.mapper.key(row), it), shop) == Skipped("not_mapped")


@pytest.mark.parametrize("order_of_halves", ["tombstone first", "upsert first"])
def test_the_two_halves_of_a_move_coalesce_to_the_upsert_in_either_order(order_of_halves: str) -> None:
    plan = orders_plan()
    shop = target(plan, name="shop")
    old, new = order(), order(user_id=5)
    halves = [record(1, plan.mapper.key(old), tomb(plan, old, V), item(plan, old, V - 5)),
              record(2, plan.mapper.key(new), item(plan, new, V))]
    if order_of_halves == "upsert first":
        halves.reverse()
    entries, superseded, _ = coalesce(translate(r, shop) for r in halves)
    assert superseded == 1
    assert [(e.op, e.pk) for e in entries if isinstance(e, Change)] == [("upsert", (7,))]
    # A later delete of the row (a higher version) still wins over both.
    later = record(3, plan.mapper.key(new), tomb(plan, new, V + 1), item(plan, new, V))
    entries, _, _ = coalesce(translate(r, shop) for r in [*halves, later])
    assert [(e.op, e.version) for e in entries if isinstance(e, Change)] == [("delete", V + 1)]


# --------------------------------------------------------------------------- embedded children

ITEM_COLS = (("id", "bigint(20)"), ("order_id", "int(11)"), ("user_id", "int(11)"), ("sku", "varchar(20)"))


def embedded_target() -> tuple[Target, TablePlan, TablePlan, EmbeddedMapper]:
    parent = TablePlan(TableMapper(TableMapping(source="shop.orders", target="shop",
                                                key={"pk": "USER#{user_id}", "sk": "ORDER#{id}"}),
                                   ORDER_COLS, ("id",)))
    child_mapping = TableMapping.model_validate(
        {"source": "shop.items", "embed": {"parent": "shop.orders", "as": "items",
                                            "on": {"order_id": "id", "user_id": "user_id"}}})
    child = TablePlan(TableMapper(child_mapping, ITEM_COLS, ("id",)))
    embedded = EmbeddedMapper(child.mapper, parent.mapper)
    embedded.validate()
    return Target("shop", [Route(parent, [ChildRoute(child, embedded)])]), parent, child, embedded


def order_item(parent: TablePlan, embedded: EmbeddedMapper, version: int, origin: str,
               entries: dict[int, tuple[int, str | None, str | None]]) -> dict[str, Any]:
    """An order's item; entries: child id -> (version, sku or None for a tombstone, entry origin)."""
    it = parent.mapper.to_item(order(), metadata=metadata(version, origin, "shop.orders"))
    m: dict[str, Any] = {}
    for i, (v, sku, entry_origin) in entries.items():
        value = (embedded.entry({"id": i, "order_id": 7, "user_id": 3, "sku": sku}, v) if sku is not None
                 else embedded.entry_tombstone(v, 2**31))
        if entry_origin:
            value["_origin"] = {"S": entry_origin}
        m[str(i)] = {"M": value}
    it["items"] = {"M": m}
    return it


def test_a_parent_item_written_in_phase_5_gives_the_children_the_application_changed() -> None:
    shop, parent, _, embedded = embedded_target()
    old = order_item(parent, embedded, V, ORIGIN_CDC,
                     {1: (5, "a", None), 2: (5, "b", None), 4: (5, "d", None)})
    new = order_item(parent, embedded, V, ORIGIN_CDC, {1: (V + 1, "a2", "app"), 2: (V + 1, None, "app"),
                                                      3: (V + 1, "c", "app"), 4: (5, "d", None)})
    out = translate_all(record(1, parent.mapper.key(order()), new, old), shop)
    assert [(x.source, x.op, x.pk) for x in out if isinstance(x, Change)] == [
        ("shop.items", "delete", (2,)), ("shop.items", "upsert", (1,)), ("shop.items", "upsert", (3,))]
    assert Skipped("entries_only") in out  # the order itself did not change
    upsert = next(x for x in out if isinstance(x, Change) and x.pk == (1,))
    assert dict(zip(("id", "order_id", "user_id", "sku"), upsert.params, strict=True)) == {
        "id": 1, "order_id": 7, "user_id": 3, "sku": "a2"}


def test_a_parent_deleted_in_phase_5_deletes_its_children_before_itself() -> None:
    shop, parent, _, embedded = embedded_target()
    old = order_item(parent, embedded, V, ORIGIN_APP, {1: (V, "a", "app"), 2: (5, "b", None)})
    tombstone = tomb(parent, order(), V + 1)
    tombstone.update({"_table": {"S": "shop.orders"}, "_pdel": {"N": str(V + 1)}, "items": {"M": {}}})
    out = translate_all(record(1, parent.mapper.key(order()), tombstone, old), shop)
    assert [(x.source, x.op, x.pk, x.version) for x in out if isinstance(x, Change)] == [
        ("shop.items", "delete", (1,), V + 1), ("shop.items", "delete", (2,), V + 1),
        ("shop.orders", "delete", (7,), V + 1)]


def test_entries_the_pipeline_wrote_are_not_the_applications_even_in_an_item_it_wrote() -> None:
    shop, parent, _, embedded = embedded_target()
    old = order_item(parent, embedded, V, ORIGIN_APP, {1: (V, "a", "app")})
    new = order_item(parent, embedded, V, ORIGIN_APP, {1: (V + 9, "late", None)})  # a CDC write after 5 -> 4
    assert [x for x in translate_all(record(1, parent.mapper.key(order()), new, old), shop)
            if isinstance(x, Change)] == []

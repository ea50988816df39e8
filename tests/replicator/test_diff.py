"""Row comparison: missing, extra and field-level differences, including type differences."""

from __future__ import annotations

from decimal import Decimal

from replicator.diff import describe, diff_row, diff_tables
from replicator.events import Row


def test_equal_tables_have_no_difference() -> None:
    rows: dict[str, Row] = {"id=1": {"id": 1, "n": Decimal("1.50")}}
    assert diff_tables("d.t", rows, dict(rows)) == []


def test_missing_and_extra_keys_are_reported() -> None:
    kinds = [(d.key, d.kind) for d in diff_tables("d.t", {"id=1": {"id": 1}}, {"id=2": {"id": 2}})]
    assert kinds == [("id=1", "missing_in_dynamodb"), ("id=2", "extra_in_dynamodb")]


def test_a_value_of_another_type_is_a_difference() -> None:
    # "1.50" the string is not 1.50 the decimal: the guide's "type conversions" class of error.
    assert diff_row({"n": Decimal("1.50")}, {"n": "1.50"}) == {"n": (Decimal("1.50"), "1.50")}
    assert diff_row({"n": 1}, {"n": True}) == {"n": (1, True)}


def test_null_and_empty_string_differ() -> None:
    assert diff_row({"s": None}, {"s": ""}) == {"s": (None, "")}


def test_description_names_each_field_with_both_values() -> None:
    (d,) = diff_tables("shop.users", {"id=1": {"id": 1, "email": "a@x"}}, {"id=1": {"id": 1, "email": "b@x"}})
    assert describe(d) == "shop.users id=1: email: mysql='a@x' dynamodb='b@x'"

"""PyMySQL's shapes <-> event values: what an application puts in comes back the same."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.errors import UnmappableValueError
from replicator.events import JsonDoc, Temporal
from replicator.mapping import parse_column_type
from replicator.mapping.pytypes import from_python, to_python


@pytest.mark.parametrize(("column", "value", "python"), [
    ("int(11)", 42, 42),
    ("bit(10)", 5, b"\x00\x05"),
    ("decimal(10,2)", Decimal("12.50"), Decimal("12.50")),
    ("float", 123456.7890625, 123457.0),  # MySQL shows FLOAT with 6 significant digits
    ("double", 0.1, 0.1),
    ("set('a','b','c')", frozenset({"c", "a"}), "a,c"),
    ("enum('x','y')", "y", "y"),
    ("json", JsonDoc({"a": 1}), '{"a": 1}'),
    ("json", JsonDoc({"z": 1, "a": {"y": 2, "b": True}}), '{"a": {"b": true, "y": 2}, "z": 1}'),  # canonical
    ("date", Temporal("date", "2024-01-02"), dt.date(2024, 1, 2)),
    ("date", Temporal("date", "0000-00-00"), "0000-00-00"),
    ("datetime(3)", Temporal("datetime", "2024-01-02T03:04:05.123"),
     dt.datetime(2024, 1, 2, 3, 4, 5, 123000)),
    ("datetime(3)", Temporal("datetime", "0000-00-00T00:00:00.000"), "0000-00-00 00:00:00.000"),
    ("timestamp(6)", Temporal("timestamp", "2024-01-02T03:04:05.123456Z"),
     dt.datetime(2024, 1, 2, 3, 4, 5, 123456)),
    ("time(2)", Temporal("time", "-12:00:01.50"), -dt.timedelta(hours=12, seconds=1, microseconds=500000)),
    ("binary(4)", b"ab", b"ab\x00\x00"),
    ("varchar(10)", "", ""),
])
def test_values_come_out_as_pymysql_gives_them(column: str, value: Any, python: Any) -> None:
    """The expectations are what PyMySQL returned from MariaDB for the same stored values."""
    assert to_python(parse_column_type(column), value) == python


@pytest.mark.parametrize(("column", "python"), [
    ("int(11)", 42), ("decimal(10,2)", Decimal("12.50")), ("double", 0.1), ("varchar(10)", "héllo"),
    ("enum('x','y')", "x"), ("set('a','b','c')", "a,c"), ("date", dt.date(2024, 1, 2)),
    ("datetime(6)", dt.datetime(2024, 1, 2, 3, 4, 5, 123456)), ("datetime", dt.datetime(2024, 1, 2, 3, 4, 5)),
    ("timestamp(3)", dt.datetime(2024, 1, 2, 3, 4, 5, 123000)), ("time", dt.timedelta(hours=-5)),
    ("time(6)", dt.timedelta(hours=838, minutes=59, seconds=59)), ("varbinary(8)", b"\x00\xff"),
    ("bit(16)", b"\x01\x02"), ("json", '{"a": [1, 2]}'), ("year", 2024),
])
def test_an_application_value_survives_the_round_trip(column: str, python: Any) -> None:
    ct = parse_column_type(column)
    assert to_python(ct, from_python(ct, python)) == python


@given(st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31)),
       st.integers(min_value=0, max_value=6))
def test_datetimes_round_trip_at_every_precision(value: dt.datetime, fsp: int) -> None:
    ct = parse_column_type(f"datetime({fsp})" if fsp else "datetime")
    kept = value.replace(microsecond=int(f"{value.microsecond:06d}"[:fsp].ljust(6, "0")) if fsp else 0)
    assert to_python(ct, from_python(ct, kept)) == kept


@pytest.mark.parametrize(("column", "value", "rule"), [
    ("datetime(3)", dt.datetime(2024, 1, 1, 0, 0, 0, 123456), "fractional digits"),
    ("datetime", dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "time zone"),
    ("int(11)", "forty-two", "not an integer"),
    ("int(11)", True, "not an integer"),
    ("varchar(10)", 5, "not a str"),
    ("json", "{not json", "not a JSON document"),
    ("date", dt.datetime(2024, 1, 1), "not a datetime"),
])
def test_a_value_of_the_wrong_shape_is_refused_naming_the_rule(column: str, value: Any, rule: str) -> None:
    with pytest.raises(UnmappableValueError, match=rule):
        from_python(parse_column_type(column), value)


def test_a_zoned_datetime_for_a_timestamp_is_stored_in_utc() -> None:
    ct = parse_column_type("timestamp")
    paris = dt.timezone(dt.timedelta(hours=2))
    assert from_python(ct, dt.datetime(2024, 6, 1, 12, 0, tzinfo=paris)) == Temporal("timestamp",
                                                                                     "2024-06-01T10:00:00Z")

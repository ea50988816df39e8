"""Property: item -> row gives back exactly the row the mapping was given, for every column type."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.events import Temporal
from replicator.mapping import TableMapper
from replicator.settings import TableMapping
from tests.replicator.mapping.strategies import COLUMNS, TIMESTAMP_MIN, datetimes_text, decimals, rows

MAPPING = TableMapping(source="shop.everything")


@settings(max_examples=150, deadline=None)
@given(rows())
def test_every_column_type_round_trips_with_explicit_nulls(row: dict[str, Any]) -> None:
    mapper = TableMapper(MAPPING, COLUMNS, ("id",))
    assert mapper.to_row(mapper.to_item(row)) == row


@settings(max_examples=100, deadline=None)
@given(rows())
def test_every_column_type_round_trips_with_nulls_omitted(row: dict[str, Any]) -> None:
    mapper = TableMapper(MAPPING.model_copy(update={"null_mode": "omit"}), COLUMNS, ("id",))
    item = mapper.to_item(row)
    assert all(av != {"NULL": True} for av in item.values())
    assert mapper.to_row(item) == row


_OVERRIDE_COLUMNS = (("id", "int(11)"), ("flag", "tinyint(1)"), ("at", "datetime(6)"),
                     ("ts", "timestamp(3)"), ("price", "decimal(10,2)"), ("big", "bigint(20)"))


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({
    "id": st.integers(1, 2**31 - 1), "flag": st.sampled_from([0, 1]),
    "at": datetimes_text(6, min_value=datetime(1900, 1, 1)).map(lambda t: Temporal("datetime", t)),
    "ts": datetimes_text(3, min_value=TIMESTAMP_MIN).map(lambda t: Temporal("timestamp", t + "Z")),
    "price": decimals(10, 2), "big": st.integers(-2**63, 2**63 - 1),
}))
def test_type_overrides_round_trip(row: dict[str, Any]) -> None:
    mapping = TableMapping(source="shop.o", types={"flag": "bool", "at": "epoch_ms", "ts": "epoch_ms",
                                                   "price": "string", "big": "string"})
    mapper = TableMapper(mapping, _OVERRIDE_COLUMNS, ("id",))
    item = mapper.to_item(row)
    assert (next(iter(item["flag"])), next(iter(item["at"])), next(iter(item["price"]))) == ("BOOL", "N", "S")
    assert mapper.to_row(item) == row

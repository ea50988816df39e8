"""Key templates with formats and defaults (issue 12): parsing, rendering, sort order."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.errors import ConfigError, MissingKeyError
from replicator.events import Temporal
from replicator.mapping import TableMapper
from replicator.mapping.templates import (
    Placeholder,
    TemplateValueError,
    parse_template,
    render_part,
    template_fields,
)
from replicator.settings import KeySpec, TableMapping

COLS = (("id", "bigint(20)"), ("email", "varchar(120)"), ("parent_id", "int(11)"),
        ("created_at", "datetime(6)"), ("day", "date"), ("note", "text"))


def mapper(pk: str, sk: str | None = None) -> TableMapper:
    m = TableMapper(TableMapping(source="shop.orders", key=KeySpec(pk=pk, sk=sk)), COLS, ("id",))
    m.validate()
    return m


def row(**over: object) -> dict[str, object]:
    r: dict[str, object] = {"id": 42, "email": "a@b.c", "parent_id": None,
                            "created_at": Temporal("datetime", "2024-01-31T10:00:05.120000"),
                            "day": Temporal("date", "2024-02-29"), "note": "x"}
    r.update(over)
    return r


def test_placeholders_carry_a_column_a_format_and_a_default() -> None:
    parts = parse_template("ORDER#{created_at:%Y-%m-%d}#{id:010d}#{parent_id|ROOT}#{n:04d|NONE}")
    assert [p for _, p in parts if p] == [
        Placeholder("created_at", "%Y-%m-%d"), Placeholder("id", "010d"),
        Placeholder("parent_id", "", "ROOT"), Placeholder("n", "04d", "NONE")]
    assert template_fields("USER#{email}#{id:08d}") == ("email", "id")


@pytest.mark.parametrize("bad", ["{id!r}", "{:08d}", "{id:%Q}", "{id:8x}", "{id", "{ id}"])
def test_a_malformed_placeholder_is_refused_naming_the_template(bad: str) -> None:
    with pytest.raises(ConfigError, match="key template"):
        parse_template(bad)


def test_keys_render_formats_and_defaults() -> None:
    m = mapper("PARENT#{parent_id|ROOT}", "ORDER#{created_at:%Y-%m-%dT%H:%M:%S.%f}#{id:010d}")
    key = m.key(row())
    assert key["pk"]["S"] == "PARENT#ROOT"
    assert key["sk"]["S"] == "ORDER#2024-01-31T10:00:05.120000#0000000042"
    assert m.key(row(parent_id=7))["pk"]["S"] == "PARENT#7"
    assert mapper("DAY#{day:%Y%m%d}").key(row())["pk"]["S"] == "DAY#20240229"
    assert mapper("D#{created_at:%Y-%m}").key(row(created_at=Temporal("datetime", "0000-00-00T00:00:00")))[
        "pk"]["S"] == "D#0000-00"  # MySQL's zero date keeps its text


def test_a_value_that_cannot_keep_its_sort_order_is_unmappable_not_mis_sorted() -> None:
    m = mapper("ORDER#{id:04d}")
    with pytest.raises(MissingKeyError, match="does not fit"):
        m.key(row(id=-1))
    with pytest.raises(MissingKeyError, match="does not fit"):
        m.key(row(id=10_000))
    with pytest.raises(MissingKeyError, match="give the placeholder a default"):
        mapper("P#{parent_id}").key(row())


def test_a_format_that_does_not_fit_the_column_type_is_refused_at_start_up() -> None:
    with pytest.raises(ConfigError, match="does not apply to 'email'"):
        mapper("U#{email:08d}")
    with pytest.raises(ConfigError, match="does not apply to 'id'"):
        mapper("U#{id:%Y}")


@given(st.lists(st.integers(0, 10**10 - 1), min_size=2, max_size=30))
def test_zero_padded_integers_sort_as_numbers(values: list[int]) -> None:
    ph = Placeholder("id", "010d")
    rendered = {v: render_part(ph, v, str(v)) for v in values}
    assert sorted(values, key=lambda v: rendered[v] or "") == sorted(values)


@given(st.lists(st.datetimes(dt.datetime(1000, 1, 1), dt.datetime(9999, 12, 31)), min_size=2, max_size=30))
def test_formatted_datetimes_sort_as_mysql_sorts_them(values: list[dt.datetime]) -> None:
    ph = Placeholder("created_at", "%Y-%m-%d#%H:%M:%S.%f")
    texts = {v: render_part(ph, t := Temporal("datetime", v.strftime("%Y-%m-%dT%H:%M:%S.%f")), t.text)
             for v in values}
    assert sorted(values, key=lambda v: texts[v] or "") == sorted(values)


def test_render_refuses_a_format_for_another_kind_of_value() -> None:
    with pytest.raises(TemplateValueError):
        render_part(Placeholder("d", "%Y"), 5, "5")
    with pytest.raises(TemplateValueError):
        render_part(Placeholder("d", "04d"), "x", "x")

"""check_row_fits: a value MySQL could not hold exactly is refused, naming the column and the rule."""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.errors import KeyShapeError, UnmappableValueError
from replicator.events import JsonDoc, Temporal
from replicator.mapping import TableMapper, check_row_fits
from replicator.mapping.coltypes import parse_column_type

INT_RANGES = {
    "tinyint(4)": (-128, 127), "tinyint(3) unsigned": (0, 255), "smallint(6)": (-2**15, 2**15 - 1),
    "smallint(5) unsigned": (0, 2**16 - 1), "mediumint(9)": (-2**23, 2**23 - 1),
    "mediumint(8) unsigned": (0, 2**24 - 1), "int(11)": (-2**31, 2**31 - 1),
    "int(10) unsigned": (0, 2**32 - 1),
    "bigint(20)": (-2**63, 2**63 - 1), "bigint(20) unsigned": (0, 2**64 - 1), "bit(5)": (0, 31),
}
OTHER = (
    ("yr", "year(4)"), ("price", "decimal(5,2)"), ("uprice", "decimal(5,2) unsigned"), ("f32", "float"),
    ("f64", "double"), ("code", "char(3)"), ("name", "varchar(4)"), ("tiny", "tinytext"), ("body", "text"),
    ("hash", "binary(4)"), ("raw", "varbinary(4)"), ("small", "tinyblob"), ("born", "date"),
    ("at", "datetime(3)"), ("at0", "datetime"), ("ts", "timestamp(6)"), ("dur", "time(2)"), ("doc", "json"),
    ("color", "enum('red','Green','')"), ("tags", "set('a','b','c')"), ("uid", "uuid"), ("ip", "inet4"),
    ("shape", "geometry"), ("secret", "varchar(10)"),
)
INT_COLUMNS = tuple((f"c{i}", typ) for i, typ in enumerate(INT_RANGES))
COLUMNS = (("id", "int(11)"), *INT_COLUMNS, *OTHER)
COLUMN_OF = {typ: name for name, typ in COLUMNS}


def mapper(**kw: Any) -> TableMapper:
    from replicator.settings import TableMapping

    return TableMapper(TableMapping(source="shop.t", **kw), COLUMNS, ("id",))


def refused(column: str, value: Any, **kw: Any) -> UnmappableValueError:
    with pytest.raises(UnmappableValueError) as exc:
        check_row_fits(mapper(**kw), {"id": 1, column: value})
    assert exc.value.table == "shop.t" and column in str(exc.value)
    return exc.value


# --------------------------------------------------------------------------- integers


@given(data=st.data())
def test_integers_inside_their_types_range_fit(data: st.DataObject) -> None:
    typ = data.draw(st.sampled_from(sorted(INT_RANGES)))
    lo, hi = INT_RANGES[typ]
    check_row_fits(mapper(), {"id": 1, COLUMN_OF[typ]: data.draw(st.integers(lo, hi))})


@given(data=st.data())
def test_integers_outside_their_types_range_are_refused(data: st.DataObject) -> None:
    typ = data.draw(st.sampled_from(sorted(INT_RANGES)))
    lo, hi = INT_RANGES[typ]
    value = data.draw(st.one_of(st.integers(hi + 1, hi + 2**70), st.integers(lo - 2**70, lo - 1)))
    assert refused(COLUMN_OF[typ], value).reason == "int-range"


@pytest.mark.parametrize("value", [0, 1901, 2155])
def test_years_mysql_keeps_as_given_fit(value: int) -> None:
    check_row_fits(mapper(), {"yr": value})


@pytest.mark.parametrize("value", [5, 99, 1900, 2156])
def test_years_mysql_would_change_or_refuse_are_refused(value: int) -> None:
    assert refused("yr", value).reason == "int-range"


def test_a_non_integer_in_an_integer_column_is_refused() -> None:
    assert refused("c0", Decimal("1.5")).reason == "type"


# --------------------------------------------------------------------------- decimals and floats


@given(st.integers(-99999, 99999))
def test_decimals_within_precision_and_scale_fit(n: int) -> None:
    check_row_fits(mapper(), {"price": Decimal(n).scaleb(-2)})


@given(st.integers(100000, 10**30).map(lambda n: Decimal(n).scaleb(-2)))
def test_decimals_with_too_many_integer_digits_are_refused(d: Decimal) -> None:
    assert refused("price", d).reason == "decimal-precision"


@given(st.integers(1, 9), st.integers(-999, 999))
def test_decimals_with_more_fractional_digits_are_refused_not_rounded(last: int, n: int) -> None:
    assert refused("price", Decimal(n * 10 + last).scaleb(-3)).reason == "decimal-scale"


def test_trailing_fractional_zeros_beyond_the_scale_fit() -> None:
    check_row_fits(mapper(), {"price": Decimal("1.500")})


def test_a_negative_decimal_in_an_unsigned_column_is_refused() -> None:
    assert refused("uprice", Decimal("-0.01")).reason == "unsigned"


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_every_finite_single_fits_a_float_column(x: float) -> None:
    check_row_fits(mapper(), {"f32": x})


def test_the_largest_single_fits_in_its_shortest_text_form() -> None:
    check_row_fits(mapper(), {"f32": 3.4028235e38})


@pytest.mark.parametrize("value", [3.5e38, -1e39, math.inf, math.nan])
def test_floats_beyond_single_precision_or_not_finite_are_refused(value: float) -> None:
    assert refused("f32", value).reason in ("float-range", "type")


# --------------------------------------------------------------------------- text and bytes


@given(st.text(st.characters(codec="utf-8"), max_size=4))
def test_varchar_holds_its_length_in_characters_whatever_their_bytes(text: str) -> None:
    check_row_fits(mapper(), {"name": text})


@given(st.text(st.characters(codec="utf-8"), min_size=5, max_size=20))
def test_varchar_refuses_more_characters_than_its_length(text: str) -> None:
    assert refused("name", text).reason == "char-length"


def test_char_refuses_trailing_spaces_mysql_would_strip() -> None:
    assert refused("code", "ab ").reason == "char-trailing-space"
    check_row_fits(mapper(), {"code": " ab"})


def test_tinytext_limit_is_255_bytes_of_utf8() -> None:
    check_row_fits(mapper(), {"tiny": "é" * 127})
    assert refused("tiny", "é" * 128).reason == "text-bytes"


def test_a_lone_surrogate_cannot_be_stored_as_utf8mb4() -> None:
    assert refused("body", "a\ud800").reason == "not-utf8"


@given(st.binary(max_size=4))
def test_binary_and_varbinary_hold_up_to_their_width_in_bytes(data: bytes) -> None:
    check_row_fits(mapper(), {"hash": data, "raw": data})


@given(st.sampled_from(["hash", "raw"]), st.binary(min_size=5, max_size=64))
def test_longer_bytes_are_refused(column: str, data: bytes) -> None:
    assert refused(column, data).reason == "byte-length"


def test_tinyblob_limit_is_255_bytes() -> None:
    check_row_fits(mapper(), {"small": b"x" * 255})
    assert refused("small", b"x" * 256).reason == "byte-length"


# --------------------------------------------------------------------------- enum, set, uuid, inet


def test_enum_takes_exactly_its_members_spelling() -> None:
    check_row_fits(mapper(), {"color": "Green"})
    check_row_fits(mapper(), {"color": ""})
    assert refused("color", "green").reason == "enum-member"


@given(st.frozensets(st.sampled_from("abc")))
def test_sets_of_members_fit(members: frozenset[str]) -> None:
    check_row_fits(mapper(), {"tags": members})


def test_a_set_with_a_non_member_is_refused() -> None:
    assert refused("tags", frozenset({"a", "d"})).reason == "set-member"


def test_uuid_and_inet4_must_be_the_text_mariadb_gives_back() -> None:
    check_row_fits(mapper(), {"uid": "123e4567-e89b-12d3-a456-426614174000", "ip": "10.0.0.1"})
    assert refused("uid", "123E4567-E89B-12D3-A456-426614174000").reason == "uuid"
    assert refused("ip", "10.0.0.256").reason == "inet"


# --------------------------------------------------------------------------- temporal


def _dt(d: datetime, digits: int) -> str:
    text = d.strftime("%Y-%m-%dT%H:%M:%S")
    return text + ("." + f"{d.microsecond:06d}"[:digits] if digits else "")


@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)))
def test_datetimes_in_range_with_the_columns_digits_fit(d: datetime) -> None:
    check_row_fits(mapper(), {"at": Temporal("datetime", _dt(d, 3)), "at0": Temporal("datetime", _dt(d, 0)),
                              "born": Temporal("date", d.date().isoformat())})


@given(st.datetimes(min_value=datetime(1000, 1, 1)), st.integers(4, 6))
def test_datetimes_with_more_fractional_digits_than_the_column_keeps_are_refused(
        d: datetime, digits: int) -> None:
    assert refused("at", Temporal("datetime", _dt(d, digits))).reason == "fsp"


def test_a_datetime_with_fewer_digits_than_the_column_keeps_is_refused() -> None:
    assert refused("at", Temporal("datetime", "2024-01-01T00:00:00.5")).reason == "fsp"


@given(st.dates(max_value=date(999, 12, 31)))
def test_dates_before_year_1000_are_refused(d: date) -> None:
    assert refused("born", Temporal("date", f"{d.year:04d}-{d.month:02d}-{d.day:02d}")).reason == "date-range"


@pytest.mark.parametrize(("column", "text"), [("born", "2024-02-30"), ("born", "2024-00-00"),
                                              ("at0", "2024-13-01T00:00:00")])
def test_impossible_calendar_dates_are_refused(column: str, text: str) -> None:
    assert refused(column, Temporal("date" if column == "born" else "datetime", text)).reason == "date-range"


def test_the_zero_date_fits_as_mysql_keeps_it_under_a_permissive_sql_mode() -> None:
    check_row_fits(mapper(), {"born": Temporal("date", "0000-00-00"),
                              "at": Temporal("datetime", "0000-00-00T00:00:00.000")})


@given(st.datetimes(min_value=datetime(1970, 1, 1, 0, 0, 1),
                    max_value=datetime(2038, 1, 19, 3, 14, 7, 999999)))
def test_timestamps_in_range_fit(d: datetime) -> None:
    check_row_fits(mapper(), {"ts": Temporal("timestamp", _dt(d, 6) + "Z")})


@given(st.one_of(st.datetimes(min_value=datetime(2038, 1, 19, 3, 14, 8)),
                 st.datetimes(min_value=datetime(1000, 1, 1),
                              max_value=datetime(1970, 1, 1, 0, 0, 0, 999999))))
def test_timestamps_outside_1970_2038_are_refused(d: datetime) -> None:
    assert refused("ts", Temporal("timestamp", _dt(d, 6) + "Z")).reason == "date-range"


def test_a_timestamp_without_its_utc_marker_is_refused() -> None:
    assert refused("ts", Temporal("timestamp", "2024-01-01T00:00:00.000000")).reason == "date-format"


def _time(delta: timedelta, digits: int) -> str:
    micros = delta // timedelta(microseconds=1)
    sign, micros = ("-", -micros) if micros < 0 else ("", micros)
    secs, frac = divmod(micros, 1_000_000)
    text = f"{sign}{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    return text + ("." + f"{frac:06d}"[:digits] if digits else "")


_TIME_MAX = timedelta(hours=838, minutes=59, seconds=59)


@given(st.integers(-_TIME_MAX // timedelta(milliseconds=10), _TIME_MAX // timedelta(milliseconds=10)))
def test_times_in_range_with_the_columns_digits_fit(centis: int) -> None:
    check_row_fits(mapper(), {"dur": Temporal("time", _time(timedelta(milliseconds=10 * centis), 2))})


@given(st.integers(1, 10**9))
def test_times_beyond_838_hours_are_refused(centis: int) -> None:
    delta = _TIME_MAX + timedelta(milliseconds=10 * centis)
    assert refused("dur", Temporal("time", _time(delta, 2))).reason == "time-range"
    assert refused("dur", Temporal("time", _time(-delta, 2))).reason == "time-range"


# --------------------------------------------------------------------------- JSON, NULL, shape


def test_a_json_document_must_serialise() -> None:
    check_row_fits(mapper(), {"doc": JsonDoc({"a": [1, 2.5, None, "x"]})})
    assert refused("doc", JsonDoc({"a": math.nan})).reason == "json"
    assert refused("doc", JsonDoc({"a": object()})).reason == "json"


def test_a_null_primary_key_or_declared_not_null_column_is_refused() -> None:
    with pytest.raises(UnmappableValueError) as exc:
        check_row_fits(mapper(), {"id": None})
    assert exc.value.reason == "not-null"
    check_row_fits(mapper(), {"id": 1, "name": None})
    with pytest.raises(UnmappableValueError, match="'name'"):
        check_row_fits(mapper(), {"id": 1, "name": None}, not_null={"name"})


def test_a_value_for_an_excluded_column_is_refused_as_it_would_be_lost() -> None:
    assert refused("secret", "x", exclude=("secret",)).reason == "excluded-column"
    check_row_fits(mapper(exclude=("secret",)), {"id": 1, "secret": None})


def test_an_unknown_column_is_a_key_shape_error_naming_the_columns() -> None:
    with pytest.raises(KeyShapeError, match=r"no column\(s\) \['nope'\].*'name'"):
        check_row_fits(mapper(), {"id": 1, "nope": 1})


def test_the_error_names_table_key_column_and_rule() -> None:
    err = refused("name", "toolong")
    assert str(err).startswith("shop.t key (id=1): column 'name': value 'toolong' does not fit varchar(4): ")
    assert err.key == "id=1"


def test_coltypes_keep_the_base_name_and_varbinary_width() -> None:
    assert (parse_column_type("mediumint(8) unsigned").base, parse_column_type("varbinary(16)").length) == (
        "mediumint", 16)

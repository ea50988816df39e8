"""Hypothesis strategies: rows of a table holding every column type, as the reader decodes them."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from replicator.events import JsonDoc, Temporal
from replicator.mapping.values import float_text

COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "bigint(20) unsigned"), ("i8", "tinyint(4)"), ("u8", "tinyint(3) unsigned"),
    ("i32", "int(11)"), ("i64", "bigint(20)"), ("flag", "tinyint(1)"), ("yr", "year(4)"),
    ("bits", "bit(64)"), ("price", "decimal(10,2)"), ("d38", "decimal(38,10)"),
    ("wide", "decimal(65,30)"), ("f32", "float"), ("f64", "double"), ("code", "char(10)"),
    ("name", "varchar(255)"), ("body", "text"), ("hash", "binary(16)"), ("raw", "varbinary(255)"),
    ("data", "blob"), ("born", "date"), ("at", "datetime(6)"), ("at0", "datetime"),
    ("ts", "timestamp(3)"), ("dur", "time(6)"), ("doc", "json"), ("color", "enum('red','green','')"),
    ("tags", "set('a','b','c')"), ("shape", "geometry"),
)

_INT_RANGES = {"tinyint(4)": (-128, 127), "tinyint(3) unsigned": (0, 255), "int(11)": (-2**31, 2**31 - 1),
               "bigint(20)": (-2**63, 2**63 - 1), "bigint(20) unsigned": (0, 2**64 - 1),
               "tinyint(1)": (-128, 127), "bit(64)": (0, 2**64 - 1)}


def decimals(precision: int, scale: int) -> st.SearchStrategy[Decimal]:
    bound = 10**precision - 1
    return st.integers(-bound, bound).map(lambda n: Decimal(n).scaleb(-scale))


def _frac(digits: int) -> st.SearchStrategy[str]:
    if digits == 0:
        return st.just("")
    return st.integers(0, 10**digits - 1).map(lambda n: "." + str(n).zfill(digits))


#: DATETIME's range (the fraction comes from ``fsp`` on top of the last second).
DATETIME_MIN = datetime(1000, 1, 1)
DATETIME_MAX = datetime(9999, 12, 31, 23, 59, 59)
#: The TIMESTAMP values the properties use: MySQL's range (1970-01-01 00:00:01 .. 2038-01-19
#: 03:14:07 UTC) less a day at either end, as the tests have always drawn them.
TIMESTAMP_MIN = datetime(1970, 1, 2)
TIMESTAMP_MAX = datetime(2038, 1, 18, 23, 59, 59)


def datetimes_text(fsp: int, min_value: datetime = DATETIME_MIN,
                   max_value: datetime = DATETIME_MAX) -> st.SearchStrategy[str]:
    """``YYYY-MM-DDTHH:MM:SS[.fff]`` between two whole seconds, drawn in range (never filtered)."""
    base = st.datetimes(min_value=min_value, max_value=max_value)
    return st.tuples(base, _frac(fsp)).map(lambda p: p[0].strftime("%Y-%m-%dT%H:%M:%S") + p[1])


def times_text(fsp: int) -> st.SearchStrategy[str]:
    return st.tuples(st.integers(-838, 838), st.integers(0, 59), st.integers(0, 59), _frac(fsp)).map(
        lambda p: f"{'-' if p[0] < 0 else ''}{abs(p[0]):02d}:{p[1]:02d}:{p[2]:02d}{p[3]}")


# JSON has one number type and DynamoDB normalises "6.8e+16" to "68000000000000000": an integral
# float comes back as the int of the same value, exact only below 2**53. Every double of magnitude
# 2**52 or more is integral, so the JSON floats are the signed zeros and the magnitudes strictly
# between 1e-100 and 2**53, drawn from those ranges directly.
_json_float_magnitudes = st.floats(min_value=1e-100, max_value=2.0**53, exclude_min=True, exclude_max=True)
_json_floats = st.one_of(
    st.sampled_from([0.0, -0.0]), _json_float_magnitudes, _json_float_magnitudes.map(lambda x: -x))
_json_scalars = st.one_of(st.booleans(), st.integers(-10**30, 10**30), st.text(max_size=20), _json_floats)
json_docs = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=4)),
    max_leaves=12,
)

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


def value_for(column_type: str) -> st.SearchStrategy[Any]:
    if column_type in _INT_RANGES:
        lo, hi = _INT_RANGES[column_type]
        return st.integers(lo, hi)
    strategies: dict[str, st.SearchStrategy[Any]] = {
        "year(4)": st.sampled_from([0, *range(1901, 2156)]),
        "decimal(10,2)": decimals(10, 2), "decimal(38,10)": decimals(38, 10),
        "decimal(65,30)": decimals(65, 30),
        # FLOAT values travel as the double nearest their shortest decimal (as the reader decodes).
        "float": st.floats(width=32, allow_nan=False, allow_infinity=False).map(
            lambda x: float(float_text(x, single=True))),
        "double": st.floats(allow_nan=False, allow_infinity=False),
        "char(10)": st.text(st.characters(blacklist_categories=("Cs",)), max_size=10),
        "varchar(255)": text, "text": text,
        "binary(16)": st.binary(min_size=16, max_size=16),
        "varbinary(255)": st.binary(max_size=64), "blob": st.binary(max_size=64),
        "geometry": st.binary(min_size=25, max_size=64),
        "date": st.dates(min_value=date(1000, 1, 1)).map(lambda d: Temporal("date", d.isoformat())),
        "datetime(6)": datetimes_text(6).map(lambda t: Temporal("datetime", t)),
        "datetime": datetimes_text(0).map(lambda t: Temporal("datetime", t)),
        "timestamp(3)": datetimes_text(3, TIMESTAMP_MIN, TIMESTAMP_MAX).map(
            lambda t: Temporal("timestamp", t + "Z")),
        "time(6)": times_text(6).map(lambda t: Temporal("time", t)),
        "json": json_docs.map(JsonDoc),
        "enum('red','green','')": st.sampled_from(["red", "green", ""]),
        "set('a','b','c')": st.frozensets(st.sampled_from("abc"), min_size=1),
    }
    return strategies[column_type]


@st.composite
def rows(draw: st.DrawFn, nullable: bool = True) -> dict[str, Any]:
    row: dict[str, Any] = {"id": draw(st.integers(0, 2**64 - 1))}
    for name, typ in COLUMNS[1:]:
        if nullable and draw(st.integers(0, 9)) == 0:
            row[name] = None
        else:
            row[name] = draw(value_for(typ))
    return row



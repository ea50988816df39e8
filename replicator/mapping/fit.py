"""Does a row fit its MySQL columns? The check of phase-5 writes, which go to DynamoDB only.

In phase 5 the application writes to DynamoDB alone, and the way back is reverse replication
into MySQL (DESIGN §3.6). A value MySQL would refuse, or silently change (round a decimal,
truncate a string, store 2005 for YEAR 5, strip a CHAR's trailing spaces), would make that way
back fail or diverge, so :func:`check_row_fits` refuses it before it is written, with
:class:`UnmappableValueError` naming the table, the column and the rule (``reason``).

Values are in the event value model (:mod:`replicator.events`), as the mapping takes them.
Limits and assumptions, so that a caller knows what is left to MySQL:

- **NOT NULL.** A ``COLUMN_TYPE`` does not say whether the column is nullable; the primary-key
  columns are NOT NULL by definition, and a caller that read ``IS_NULLABLE`` from
  ``information_schema`` passes the others as ``not_null``. Any other NOT NULL column is left to
  MySQL (the reverse write fails visibly). Columns the row does not carry are not checked.
- **Text** is measured as utf8mb4 (the product's connection charset): CHAR/VARCHAR lengths in
  characters (code points), TEXT limits in UTF-8 bytes. A column in a narrower charset (latin1)
  may still refuse a character this check lets through.
- **Dates.** MySQL's documented ranges (DATE and DATETIME 1000-01-01 .. 9999-12-31, TIMESTAMP
  1970-01-01 00:00:01 .. 2038-01-19 03:14:07 UTC), plus the zero value, which MySQL keeps under
  a permissive ``sql_mode`` and which replicated rows may already hold. Fractional seconds: the
  text carries exactly the column's ``fsp`` digits; more digits are refused, not rounded.
- Deprecated ``FLOAT(M,D)`` / ``DOUBLE(M,D)`` display precision and geometry validity are not
  checked.

Pure; no I/O.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import struct
import uuid
from collections.abc import Collection
from datetime import datetime
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from replicator.errors import KeyShapeError, UnmappableValueError
from replicator.events import JsonDoc, Row, Temporal
from replicator.mapping.coltypes import ColumnType
from replicator.mapping.mapper import TableMapper

_INT_BYTES = {"tinyint": 1, "smallint": 2, "mediumint": 3, "int": 4, "integer": 4, "bigint": 8}
_TEXT_BYTES = {"tinytext": 255, "text": 65_535, "mediumtext": 16_777_215, "longtext": 4_294_967_295}
_BLOB_BYTES = {"tinyblob": 255, "blob": 65_535, "mediumblob": 16_777_215, "longblob": 4_294_967_295}
_CHARS = frozenset(("char", "varchar", "nchar", "nvarchar"))
_FLOAT_MAX = 3.4028234663852886e38  # the largest single-precision value

_DATE = r"(\d{4})-(\d{2})-(\d{2})"
_CLOCK = r"(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
_DATE_RE = re.compile(_DATE)
_DATETIME_RE = re.compile(_DATE + "T" + _CLOCK)
_TIMESTAMP_RE = re.compile(_DATE + "T" + _CLOCK + "Z")
_TIME_RE = re.compile(r"(-?)(\d{2,}):(\d{2}):(\d{2})(?:\.(\d+))?")

_DATETIME_MIN, _DATETIME_MAX = datetime(1000, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999_999)
_TIMESTAMP_MIN, _TIMESTAMP_MAX = datetime(1970, 1, 1, 0, 0, 1), datetime(2038, 1, 19, 3, 14, 7, 999_999)
_TIME_MAX_MICROS = (838 * 3600 + 59 * 60 + 59) * 1_000_000


class _Misfit(Exception):
    """One rule a value breaks: ``rule`` is the short reason code, the message explains it."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def check_row_fits(mapper: TableMapper, row: Row, *, not_null: Collection[str] = ()) -> None:
    """Refuse a row (or the columns of a partial row) that MySQL could not hold exactly.

    An unknown column is a :class:`KeyShapeError`; a value that breaks a rule is an
    :class:`UnmappableValueError` whose ``reason`` names the rule. ``not_null`` adds NOT NULL
    columns to the primary key's (see the module docstring).
    """
    unknown = sorted(set(row) - set(mapper.types))
    if unknown:
        raise KeyShapeError(f"{mapper.table} has no column(s) {unknown}; "
                            f"its columns are {sorted(mapper.types)}")
    required = set(mapper.primary_key) | set(not_null)
    for column, value in row.items():
        try:
            if value is None:
                if column in required:
                    raise _Misfit("not-null", "the column is NOT NULL")
                continue
            if column in mapper.mapping.exclude:
                raise _Misfit("excluded-column", "the column is excluded from DynamoDB (tables[].exclude), "
                                                 "so a write that goes to DynamoDB only would lose the value")
            check_value_fits(mapper.types[column], value)
        except _Misfit as misfit:
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            key = mapper.key_text(row)
            raise UnmappableValueError(
                f"{mapper.table} key ({key}): column {column!r}: value {shown} does not fit "
                f"{mapper.types[column].text}: {misfit}", table=mapper.table, key=key, reason=misfit.rule,
            ) from None


def check_value_fits(ct: ColumnType, value: Any) -> None:
    """Raise :class:`_Misfit` when MySQL could not hold ``value`` (not None) exactly in a ``ct`` column."""
    kind = ct.kind
    if kind in ("int", "bit", "year"):
        _integer(ct, value)
    elif kind == "decimal":
        _decimal(ct, value)
    elif kind in ("float", "double"):
        _float(ct, value)
    elif kind == "text":
        _text(ct, value)
    elif kind == "enum":
        if not isinstance(value, str) or value not in ct.members:
            raise _Misfit("enum-member", f"not one of the members {list(ct.members)} (exact spelling)")
    elif kind == "set":
        members = value.split(",") if isinstance(value, str) and value else value
        if not isinstance(members, frozenset | set | list | tuple) or not all(
                isinstance(m, str) and m in ct.members for m in members):
            raise _Misfit("set-member", f"not a set of the members {list(ct.members)}")
    elif kind in ("binary", "bytes", "geometry"):
        _bytes(ct, value)
    elif kind in ("date", "datetime", "timestamp"):
        _datetime(ct, value)
    elif kind == "time":
        _time(ct, value)
    elif kind == "json":
        try:
            json.dumps(value.value if isinstance(value, JsonDoc) else value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise _Misfit("json", f"not a JSON document ({exc})") from None


def _integer(ct: ColumnType, value: Any) -> None:
    if isinstance(value, bytes) and ct.kind == "bit":
        n = int.from_bytes(value, "big")
    elif isinstance(value, int) or (
            isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value()):
        n = int(value)
    else:
        raise _Misfit("type", "not an integer")
    if ct.kind == "bit":
        if not 0 <= n < 2**ct.length:
            raise _Misfit("int-range", f"BIT({ct.length}) holds 0 .. {2**ct.length - 1}")
        return
    if ct.kind == "year":
        if n != 0 and not 1901 <= n <= 2155:
            raise _Misfit("int-range", "YEAR holds 0 and 1901 .. 2155 (MySQL reads 1 .. 99 as 20xx/19xx)")
        return
    bits = 8 * _INT_BYTES.get(ct.base, 8)
    low, high = (0, 2**bits - 1) if ct.unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if not low <= n <= high:
        raise _Misfit("int-range", f"{ct.base.upper()}{' UNSIGNED' if ct.unsigned else ''} holds "
                                   f"{low} .. {high}")


def _decimal(ct: ColumnType, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise _Misfit("type", "not a Decimal or an int")
    d = Decimal(value)
    if not d.is_finite():
        raise _Misfit("type", "not a finite decimal")
    if ct.unsigned and d < 0:
        raise _Misfit("unsigned", "the column is UNSIGNED")
    with localcontext() as ctx:
        ctx.prec = max(ct.precision, 1) + 200
        try:
            exact = d.quantize(Decimal(1).scaleb(-ct.scale)) == d
        except InvalidOperation:
            exact = False
    if not exact:
        raise _Misfit("decimal-scale", f"more than {ct.scale} fractional digit(s); MySQL would round it")
    if abs(d) >= Decimal(10) ** (ct.precision - ct.scale):
        raise _Misfit("decimal-precision", f"more than {ct.precision - ct.scale} integer digit(s)")


def _float(ct: ColumnType, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Misfit("type", "not a number")
    x = float(value)
    if not math.isfinite(x):
        raise _Misfit("type", "not a finite number")
    if ct.unsigned and x < 0:
        raise _Misfit("unsigned", "the column is UNSIGNED")
    if ct.kind == "float":
        try:  # the shortest text of the largest single reads back a little above it: round as MySQL does
            struct.pack("<f", x)
        except OverflowError:
            raise _Misfit("float-range", f"beyond FLOAT's ±{_FLOAT_MAX:.8g}") from None


def _text(ct: ColumnType, value: Any) -> None:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise _Misfit("not-utf8", "bytes that are not UTF-8 text") from None
    if not isinstance(value, str):
        raise _Misfit("type", "not a str")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise _Misfit("not-utf8", "holds a lone surrogate, which utf8mb4 cannot store") from None
    if ct.base in _CHARS and ct.length and len(value) > ct.length:
        raise _Misfit("char-length", f"{len(value)} characters, over the column's {ct.length}")
    if ct.base in ("char", "nchar") and value != value.rstrip(" "):
        raise _Misfit("char-trailing-space", "MySQL strips a CHAR's trailing spaces when it reads it back")
    limit = _TEXT_BYTES.get(ct.base)
    if limit is not None and size > limit:
        raise _Misfit("text-bytes", f"{size} bytes of UTF-8, over {ct.base.upper()}'s {limit}")
    if ct.base == "uuid":
        try:
            canonical = str(uuid.UUID(value))
        except ValueError:
            raise _Misfit("uuid", "not a UUID") from None
        if canonical != value:
            raise _Misfit("uuid", f"MariaDB would store it as {canonical!r}")
    elif ct.base in ("inet4", "inet6"):
        try:
            address = ipaddress.IPv4Address(value) if ct.base == "inet4" else ipaddress.IPv6Address(value)
        except ValueError:
            raise _Misfit("inet", f"not an {'IPv4' if ct.base == 'inet4' else 'IPv6'} address") from None
        if ct.base == "inet4" and str(address) != value:
            raise _Misfit("inet", f"MariaDB would store it as {str(address)!r}")


def _bytes(ct: ColumnType, value: Any) -> None:
    if not isinstance(value, bytes | bytearray):
        raise _Misfit("type", "not bytes")
    size = len(value)
    limit = _BLOB_BYTES.get(ct.base, ct.length if ct.kind != "geometry" else 0)
    if limit and size > limit:
        raise _Misfit("byte-length", f"{size} bytes, over the column's {limit}")


def _fraction(ct: ColumnType, frac: str | None) -> int:
    digits = frac or ""
    if len(digits) != ct.fsp:
        raise _Misfit("fsp", f"{len(digits)} fractional digit(s); a {ct.text} value carries exactly {ct.fsp} "
                             f"(more would be rounded by MySQL)")
    return int((digits + "000000")[:6]) if digits else 0


def _datetime(ct: ColumnType, value: Any) -> None:
    if not isinstance(value, Temporal | str):
        raise _Misfit("type", f"not a {ct.kind} value (Temporal text)")
    text = value.text if isinstance(value, Temporal) else value
    pattern = {"date": _DATE_RE, "datetime": _DATETIME_RE, "timestamp": _TIMESTAMP_RE}[ct.kind]
    m = pattern.fullmatch(text)
    if m is None:
        shape = {"date": "YYYY-MM-DD", "datetime": "YYYY-MM-DDTHH:MM:SS[.f]",
                 "timestamp": "YYYY-MM-DDTHH:MM:SS[.f]Z"}[ct.kind]
        raise _Misfit("date-format", f"not MySQL's {shape} text")
    parts = [int(p) for p in m.groups()[:6] if p is not None]
    micros = _fraction(ct, m.group(7)) if ct.kind != "date" else 0
    if all(p == 0 for p in parts) and micros == 0:
        return  # the zero date, which a permissive sql_mode stores
    year, month, day, hour, minute, second = [*parts, 0, 0, 0][:6]
    try:
        at = datetime(year, month, day, hour, minute, second, micros)
    except ValueError:
        raise _Misfit("date-range", "not a calendar date") from None
    low, high = (_TIMESTAMP_MIN, _TIMESTAMP_MAX) if ct.kind == "timestamp" else (_DATETIME_MIN, _DATETIME_MAX)
    if not low <= at <= high:
        shown = (f"{low.date()} .. {high.date()}" if ct.kind == "date"
                 else f"{low} .. {high.replace(microsecond=0)}{' UTC' if ct.kind == 'timestamp' else ''}")
        raise _Misfit("date-range", f"outside {ct.kind.upper()}'s range {shown}")


def _time(ct: ColumnType, value: Any) -> None:
    if not isinstance(value, Temporal | str):
        raise _Misfit("type", "not a time value (Temporal text)")
    text = value.text if isinstance(value, Temporal) else value
    m = _TIME_RE.fullmatch(text)
    if m is None:
        raise _Misfit("date-format", "not MySQL's [-]HH:MM:SS[.f] text")
    _sign, hours, minutes, seconds, frac = m.groups()
    micros = _fraction(ct, frac)
    if int(minutes) > 59 or int(seconds) > 59:
        raise _Misfit("time-range", "minutes and seconds run 00 .. 59")
    total = ((int(hours) * 60 + int(minutes)) * 60 + int(seconds)) * 1_000_000 + micros
    if total > _TIME_MAX_MICROS:
        raise _Misfit("time-range", "outside TIME's range -838:59:59 .. 838:59:59")

"""Event values <-> the Python values an application gets from PyMySQL, per column type.

The mapping (:mod:`replicator.mapping.values`) works on the lossless event value model
(:mod:`replicator.events`). Applications see PyMySQL's types instead; the client shim converts
at its edge with these two functions, so a row looks the same whichever store served it:

========================  ==============================================================
column                    Python value (as PyMySQL's default conversions give it)
========================  ==============================================================
integers, YEAR            ``int``
BIT(n)                    ``bytes`` of ``ceil(n / 8)`` bytes, big-endian
DECIMAL                   ``Decimal`` with the column's scale
FLOAT                     ``float`` of MySQL's 6-significant-digit text (what PyMySQL reads)
DOUBLE                    ``float``
CHAR, TEXT, ENUM          ``str``
SET                       ``str``: members joined by ``,`` in definition order
BINARY, BLOB, GEOMETRY    ``bytes`` (BINARY(n) zero-padded to n)
DATE                      ``datetime.date``
DATETIME, TIMESTAMP       ``datetime.datetime`` (naive; TIMESTAMP in UTC, the client's session
                          time zone)
TIME                      ``datetime.timedelta``
zero / out-of-range dates MySQL's text, as PyMySQL returns it (``"0000-00-00"``)
JSON                      ``str`` (compact canonical text) or the parsed document
========================  ==============================================================

Pure; no I/O. :func:`from_python` accepts what an application passes in (the types above and
a few obvious spellings such as an ISO string for a DATETIME or a ``set`` for a SET column)
and refuses the rest with :class:`UnmappableValueError` naming the rule.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from replicator.errors import UnmappableValueError
from replicator.events import JsonDoc, Temporal, Value, json_text, parse_json_exact
from replicator.mapping.coltypes import ColumnType
from replicator.mapping.values import float_text

JsonMode = Literal["text", "parsed"]


# --------------------------------------------------------------------------- event value -> Python


def to_python(ct: ColumnType, value: Value, json_mode: JsonMode = "text") -> Any:
    """The value PyMySQL would have returned for this column."""
    if value is None:
        return None
    kind = ct.kind
    if kind == "bit":
        n = int(value)  # type: ignore[arg-type]
        return n.to_bytes(max(1, (ct.length + 7) // 8), "big")
    if kind == "float" and isinstance(value, int | float):
        return float(f"{float(value):.6g}")
    if kind == "set":
        members = value if isinstance(value, frozenset) else frozenset(str(value).split(","))
        order = {m: i for i, m in enumerate(ct.members)}
        return ",".join(sorted(members, key=lambda m: (order.get(m, len(order)), m)))
    if kind == "json":
        doc = value.value if isinstance(value, JsonDoc) else value
        # Keys sorted: DynamoDB maps keep no key order, so only a canonical text is the same
        # from both stores.
        return doc if json_mode == "parsed" else json_text(doc, sort_keys=True, spaced=True)
    if kind == "binary" and isinstance(value, bytes) and len(value) < ct.length:
        return value.ljust(ct.length, b"\0")
    if isinstance(value, Temporal):
        return _temporal_to_python(value)
    return value


def _temporal_to_python(t: Temporal) -> Any:
    text = t.text
    try:
        if t.kind == "date":
            return dt.date.fromisoformat(text)
        if t.kind in ("datetime", "timestamp"):
            return dt.datetime.fromisoformat(text.removesuffix("Z"))
        return _parse_time(text)
    except ValueError:
        # Zero dates and other values Python cannot hold: PyMySQL hands back MySQL's text.
        return text.removesuffix("Z").replace("T", " ")


def _parse_time(text: str) -> dt.timedelta:
    negative = text.startswith("-")
    hours, minutes, seconds = text.lstrip("-").split(":")
    whole, _, frac = seconds.partition(".")
    micros = int((frac + "000000")[:6]) if frac else 0
    delta = dt.timedelta(hours=int(hours), minutes=int(minutes), seconds=int(whole), microseconds=micros)
    return -delta if negative else delta


# --------------------------------------------------------------------------- Python -> event value


def _bad(ct: ColumnType, value: object, rule: str) -> UnmappableValueError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return UnmappableValueError(f"value {shown} does not fit a {ct.text} column: {rule}", reason=rule)


def from_python(ct: ColumnType, value: Any) -> Value:
    """An application's value for this column in the event value model (the mapping's input)."""
    if value is None:
        return None
    kind = ct.kind
    if kind in ("int", "year"):
        if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
            raise _bad(ct, value, "not an integer")
        try:
            return int(value)
        except (ValueError, ArithmeticError):
            raise _bad(ct, value, "not an integer") from None
    if kind == "bit":
        if isinstance(value, bytes | bytearray):
            return int.from_bytes(bytes(value), "big")
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _bad(ct, value, "BIT takes bytes or an int")
    if kind == "decimal":
        return _decimal(ct, value)
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise _bad(ct, value, "not a number")
        x = float(value)
        return float(float_text(x, single=True)) if kind == "float" else x
    if kind in ("text", "enum"):
        if not isinstance(value, str):
            raise _bad(ct, value, "not a str")
        return value
    if kind == "set":
        if isinstance(value, str):
            return frozenset(value.split(",")) if value else frozenset()
        if isinstance(value, set | frozenset | list | tuple) and all(isinstance(m, str) for m in value):
            return frozenset(value)
        raise _bad(ct, value, "SET takes a comma-separated str or a set of str")
    if kind in ("binary", "bytes", "geometry"):
        if not isinstance(value, bytes | bytearray):
            raise _bad(ct, value, "not bytes")
        return bytes(value)
    if kind == "json":
        if isinstance(value, str | bytes):
            try:
                return JsonDoc(parse_json_exact(value))
            except ValueError:
                raise _bad(ct, value, "not a JSON document") from None
        if isinstance(value, JsonDoc):
            return value
        return JsonDoc(value)
    if ct.is_temporal:
        return Temporal(kind, _temporal_text(ct, value))  # type: ignore[arg-type]
    raise _bad(ct, value, f"no conversion for kind {kind}")


def _decimal(ct: ColumnType, value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal | float):
        raise _bad(ct, value, "not a decimal")
    try:
        d = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise _bad(ct, value, "not a decimal") from None
    if not d.is_finite():
        raise _bad(ct, value, "not a finite decimal")
    return d


def _fraction(micros: int, fsp: int) -> str:
    return f".{micros:06d}"[: fsp + 1] if fsp else ""


def _temporal_text(ct: ColumnType, value: Any) -> str:
    """MySQL's canonical text of a temporal value, with exactly the column's fractional digits.

    Digits beyond the column's precision are refused, not rounded: MySQL would round them
    (or truncate, per sql_mode), and a DynamoDB-only write must store what MySQL would.
    """
    kind, fsp = ct.kind, ct.fsp
    if isinstance(value, Temporal):
        return value.text
    if isinstance(value, str):
        parsed: object = _parse_text(ct, value)
        return _temporal_text(ct, parsed)
    if kind == "date":
        if isinstance(value, dt.datetime):
            raise _bad(ct, value, "a DATE takes a date, not a datetime")
        if isinstance(value, dt.date):
            return value.isoformat()
        raise _bad(ct, value, "not a date")
    if kind in ("datetime", "timestamp"):
        if not isinstance(value, dt.datetime):
            if isinstance(value, dt.date):
                value = dt.datetime(value.year, value.month, value.day)
            else:
                raise _bad(ct, value, "not a datetime")
        if value.tzinfo is not None:
            if kind == "datetime":
                raise _bad(ct, value, "a DATETIME has no time zone: pass a naive datetime")
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        if value.microsecond and f"{value.microsecond:06d}"[fsp:].strip("0"):
            raise _bad(ct, value, f"more fractional digits than the column's {fsp}")
        text = str(value.strftime("%Y-%m-%dT%H:%M:%S")) + _fraction(value.microsecond, fsp)
        return text + "Z" if kind == "timestamp" else text
    if kind == "time":
        if not isinstance(value, dt.timedelta):
            raise _bad(ct, value, "not a timedelta")
        total = value.days * 86_400_000_000 + value.seconds * 1_000_000 + value.microseconds
        sign, total = ("-", -total) if total < 0 else ("", total)
        secs, micros = divmod(total, 1_000_000)
        if micros and f"{micros:06d}"[fsp:].strip("0"):
            raise _bad(ct, value, f"more fractional digits than the column's {fsp}")
        hours, rest = divmod(secs, 3600)
        return f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}" + _fraction(micros, fsp)
    raise _bad(ct, value, "not a temporal column")


def _parse_text(ct: ColumnType, text: str) -> Any:
    try:
        if ct.kind == "date":
            return dt.date.fromisoformat(text)
        if ct.kind in ("datetime", "timestamp"):
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            return parsed
        return _parse_time(text)
    except ValueError:
        raise _bad(ct, text, "not an ISO date/time text") from None

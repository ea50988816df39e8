"""One column value <-> one DynamoDB attribute value (DESIGN §3.2), and the inverse.

Attribute values are the low-level client form: ``{"S": "x"}``, ``{"N": "1.50"}``,
``{"B": b"..."}``, ``{"NULL": True}``... Pure; no I/O. ``None`` from :func:`encode_value`
means SQL NULL (the caller decides between an explicit NULL attribute and omitting it).

The defaults are lossless: decoding what was encoded gives back the same value, with two
documented exceptions inherited from DESIGN §3.2 -- an empty SET and a JSON ``null``
document both become a NULL attribute, which reads back as SQL NULL. Overrides
(``tables[].types``) trade exactness for a nicer DynamoDB shape as the operator chose.
"""

from __future__ import annotations

import calendar
import math
import struct
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation, localcontext
from typing import Any

from replicator.errors import UnmappableValueError
from replicator.events import JsonDoc, Temporal, Value, exact_number, json_text, parse_json_exact
from replicator.mapping.coltypes import MAX_NUMBER_DIGITS, ColumnType
from replicator.settings import ColumnType as Override

AttributeValue = dict[str, Any]

# DynamoDB numbers: 38 significant digits, magnitude 1E-130 .. 9.99..E+125.
_N_MIN = 1e-130
_N_MAX = 9.9e125

#: Which overrides make sense for which column kinds (anything else is a ConfigError).
OVERRIDES_ALLOWED: dict[str, frozenset[str]] = {
    "epoch_ms": frozenset(("date", "datetime", "timestamp")),
    "bool": frozenset(("int", "bit")),
    "string": frozenset(("int", "bit", "year", "decimal", "float", "double", "json", "set", "text",
                         "enum", "date", "datetime", "timestamp", "time")),
    "number": frozenset(("int", "bit", "year", "decimal", "float", "double", "text", "enum")),
    "default": frozenset(),  # allowed for all kinds, checked separately
}


def _bad(ct: ColumnType, value: object, reason: str) -> UnmappableValueError:
    return UnmappableValueError(f"value {_preview(value)} of a {ct.text} column: {reason}", reason=reason)


def _preview(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- numbers


def float_text(value: float, single: bool) -> str:
    """The shortest decimal text that reads back as the same float (single or double precision)."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r} is not a finite number")
    if not single:
        return repr(value)
    stored = struct.unpack("<f", struct.pack("<f", value))[0]
    for digits in range(1, 10):
        text = f"{stored:.{digits}g}"
        try:
            if struct.unpack("<f", struct.pack("<f", float(text)))[0] == stored:
                return text
        except OverflowError:  # rounded past the largest single: needs more digits
            continue
    return repr(stored)


def _n_fits(x: float) -> bool:
    return x == 0 or _N_MIN <= abs(x) <= _N_MAX


def decimal_text(d: Decimal) -> str:
    return format(d, "f")


def _quantize(d: Decimal, scale: int) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 200
        return d.quantize(Decimal(1).scaleb(-scale))


def _to_int(ct: ColumnType, value: Value) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, bytes):  # BIT read as bytes: its unsigned big-endian value
        return int.from_bytes(value, "big")
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    raise _bad(ct, value, "not an integer")


# --------------------------------------------------------------------------- temporal


def _epoch_ms(ct: ColumnType, text: str) -> str:
    body = text.rstrip("Z")
    main, _, frac = body.partition(".")
    try:
        dt = datetime.fromisoformat(main if "T" in main or " " in main else main + "T00:00")
    except ValueError:
        raise _bad(ct, text, "not a calendar date (zero date?) so it has no epoch_ms value") from None
    seconds = calendar.timegm(dt.replace(tzinfo=UTC).utctimetuple())
    ms = Decimal(seconds) * 1000 + (Decimal("0." + frac) * 1000 if frac else 0)
    return decimal_text(ms.normalize() if frac else ms)


def _from_epoch_ms(ct: ColumnType, n: str) -> Temporal:
    with localcontext() as ctx:
        ctx.prec = 60
        ms = Decimal(n)
        seconds = int((ms / 1000).to_integral_value(rounding=ROUND_FLOOR))
        frac = (ms - seconds * 1000) / 1000
    dt = datetime(1970, 1, 1) + timedelta(seconds=seconds)
    if ct.kind == "date":
        return Temporal("date", dt.strftime("%Y-%m-%d"))
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if ct.fsp:
        text += "." + decimal_text(_quantize(frac, ct.fsp)).partition(".")[2]
    return Temporal(ct.kind, text + ("Z" if ct.kind == "timestamp" else ""))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- JSON documents


def json_to_attr(doc: Any) -> AttributeValue:
    """A JSON document as native DynamoDB types (M / L / S / N / BOOL / NULL)."""
    if doc is None:
        return {"NULL": True}
    if isinstance(doc, bool):
        return {"BOOL": doc}
    if isinstance(doc, int):
        if len(str(abs(doc))) > MAX_NUMBER_DIGITS:
            raise UnmappableValueError(f"JSON number {_preview(doc)} has more than 38 digits",
                                       reason="json-number-range")
        return {"N": str(doc)}
    if isinstance(doc, float):
        if not _n_fits(doc):
            raise UnmappableValueError(f"JSON number {doc!r} is outside DynamoDB's range",
                                       reason="json-number-range")
        return {"N": repr(doc)}
    if isinstance(doc, Decimal):  # a number a double cannot hold (events.parse_json_exact)
        digits = len(doc.normalize().as_tuple().digits)
        if digits > MAX_NUMBER_DIGITS or not doc.is_finite() or not _n_fits(float(doc)):
            raise UnmappableValueError(f"JSON number {_preview(doc)} does not fit DynamoDB's numbers (38 "
                                       "digits, 1E-130 to 1E+126)", reason="json-number-range")
        return {"N": decimal_text(doc)}
    if isinstance(doc, str):
        return {"S": doc}
    if isinstance(doc, list):
        return {"L": [json_to_attr(x) for x in doc]}
    if isinstance(doc, dict):
        if "" in doc:
            raise UnmappableValueError("JSON object with an empty key (DynamoDB map keys are non-empty)",
                              reason="json-empty-key")
        return {"M": {str(k): json_to_attr(v) for k, v in doc.items()}}
    raise UnmappableValueError(f"not a JSON value: {_preview(doc)}", reason="json-type")


def attr_to_json(av: AttributeValue) -> Any:
    ((tag, payload),) = av.items()
    if tag == "NULL":
        return None
    if tag == "BOOL":
        return bool(payload)
    if tag == "N":
        return exact_number(str(payload))
    if tag == "S":
        return payload
    if tag == "L":
        return [attr_to_json(x) for x in payload]
    if tag == "M":
        return {k: attr_to_json(v) for k, v in payload.items()}
    raise ValueError(f"attribute type {tag} is not a JSON value")


# --------------------------------------------------------------------------- encode


def encode_value(ct: ColumnType, override: Override, value: Value) -> AttributeValue | None:
    """A column value as an attribute value; ``None`` for SQL NULL (and for an empty SET)."""
    if value is None:
        return None
    if override == "bool":
        n = _to_int(ct, value)
        if n not in (0, 1):
            raise _bad(ct, value, "not-a-boolean (types override 'bool' needs 0 or 1)")
        return {"BOOL": n == 1}
    if override == "epoch_ms":
        return {"N": _epoch_ms(ct, _temporal_text(ct, value))}
    if override == "string":
        return {"S": _string_form(ct, value)}
    if override == "number" and ct.kind in ("text", "enum", "decimal"):
        text = value if isinstance(value, str) else None
        if isinstance(value, Decimal):
            text = decimal_text(value)
        try:
            ok = text is not None and Decimal(text).is_finite()
        except InvalidOperation:
            ok = False
        if not ok or text is None:
            raise _bad(ct, value, "not-a-number (types override 'number')")
        return {"N": text.strip()}
    return _default(ct, value)


def _temporal_text(ct: ColumnType, value: Value) -> str:
    if isinstance(value, Temporal):
        return value.text
    if isinstance(value, str):
        return value
    raise _bad(ct, value, "not a temporal value")


def _string_form(ct: ColumnType, value: Value) -> str:
    if ct.kind == "json":
        doc = value.value if isinstance(value, JsonDoc) else value
        return json_text(doc)
    if ct.kind == "set":
        if not isinstance(value, frozenset | set):
            raise _bad(ct, value, "not a SET value")
        return ",".join(sorted(value))
    if ct.kind in ("float", "double"):
        if not isinstance(value, int | float):
            raise _bad(ct, value, "not a float")
        return float_text(float(value), ct.kind == "float")
    if ct.kind == "decimal":
        if not isinstance(value, Decimal | int):
            raise _bad(ct, value, "not a decimal")
        return decimal_text(Decimal(value))
    if ct.is_integer:
        return str(_to_int(ct, value))
    av = _default(ct, value)
    if av is None or "S" not in av:
        raise _bad(ct, value, "has no string form")
    return str(av["S"])


def _default(ct: ColumnType, value: Value) -> AttributeValue | None:
    kind = ct.kind
    if kind in ("int", "bit", "year"):
        return {"N": str(_to_int(ct, value))}
    if kind == "decimal":
        if not isinstance(value, Decimal | int):
            raise _bad(ct, value, "not a decimal")
        text = decimal_text(Decimal(value))
        return {"N": text} if ct.decimal_as_number else {"S": text}
    if kind in ("float", "double"):
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise _bad(ct, value, "not a finite float")
        text = float_text(float(value), kind == "float")
        return {"N": text} if _n_fits(float(text)) else {"S": text}
    if kind in ("text", "enum"):
        if isinstance(value, bytes):
            try:
                return {"S": value.decode("utf-8")}
            except UnicodeDecodeError:
                raise _bad(ct, value, "text column value is not valid UTF-8") from None
        if not isinstance(value, str):
            raise _bad(ct, value, "not a string")
        return {"S": value}
    if kind in ("binary", "bytes", "geometry"):
        if not isinstance(value, bytes | bytearray):
            raise _bad(ct, value, "not bytes")
        data = bytes(value)
        if kind == "binary" and len(data) < ct.length:
            data = data.ljust(ct.length, b"\0")  # MySQL pads BINARY(n); the binlog drops the padding
        return {"B": data}
    if ct.is_temporal:
        return {"S": _temporal_text(ct, value)}
    if kind == "json":
        return json_to_attr(value.value if isinstance(value, JsonDoc) else value)
    if kind == "set":
        if not isinstance(value, frozenset | set):
            raise _bad(ct, value, "not a SET value")
        return {"SS": sorted(value)} if value else None
    raise _bad(ct, value, f"no mapping for kind {kind}")


# --------------------------------------------------------------------------- decode


def decode_value(ct: ColumnType, override: Override, av: AttributeValue | None) -> Value:
    """The inverse of :func:`encode_value`."""
    if av is None or "NULL" in av:
        return None
    ((tag, payload),) = av.items()
    if override == "bool" and tag == "BOOL":
        return 1 if payload else 0
    if override == "epoch_ms" and tag == "N":
        return _from_epoch_ms(ct, str(payload))
    if override == "string" and tag == "S":
        return _from_string(ct, str(payload))
    if override == "number" and ct.kind in ("text", "enum") and tag == "N":
        return str(payload)
    return _from_default(ct, tag, payload)


def _from_string(ct: ColumnType, text: str) -> Value:
    if ct.kind == "json":
        return JsonDoc(parse_json_exact(text))
    if ct.kind == "set":
        return frozenset(text.split(",")) if text else frozenset()
    return _from_default(ct, "N" if ct.kind != "decimal" or ct.decimal_as_number else "S", text) \
        if ct.kind in ("int", "bit", "year", "decimal", "float", "double") else _from_default(ct, "S", text)


def _from_default(ct: ColumnType, tag: str, payload: Any) -> Value:
    kind = ct.kind
    if kind in ("int", "bit", "year"):
        return int(Decimal(str(payload)))
    if kind == "decimal":
        d = Decimal(str(payload))
        return _quantize(d, ct.scale)
    if kind in ("float", "double"):
        x = float(str(payload))
        # A FLOAT travels as the double nearest its shortest decimal (what the reader, the
        # backfill and a MySQL client all give), not as the float32's exact binary value.
        return float(float_text(x, single=True)) if kind == "float" else x
    if kind in ("text", "enum"):
        return str(payload)
    if kind in ("binary", "bytes", "geometry"):
        return bytes(payload)
    if ct.is_temporal:
        return Temporal(kind, str(payload))  # type: ignore[arg-type]
    if kind == "json":
        return JsonDoc(attr_to_json({tag: payload}))
    if kind == "set":
        return frozenset(str(x) for x in payload)
    raise ValueError(f"no inverse mapping for kind {kind}")

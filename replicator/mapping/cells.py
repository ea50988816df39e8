"""From a SELECT cell to the event value model (:mod:`replicator.events`), per column type.

Shared by every role that reads current rows from MySQL: the backfill, the reconciliation
and the application client, so a row read from MySQL compares exactly with one mapped back
from DynamoDB.

The SELECT list asks the server for forms that lose nothing over the text protocol:
temporal columns as their canonical text (zero dates included; the session runs in UTC so
TIMESTAMP text is UTC), FLOAT widened to DOUBLE (the exact stored single, then its shortest
round-trip text), BIT as an unsigned integer. The values produced are the ones the binlog
reader emits for the same row, so snapshot and stream events are interchangeable.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from replicator.events import JsonDoc, Temporal, Value, parse_json_exact
from replicator.mapping.coltypes import ColumnType
from replicator.mapping.values import float_text


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def select_expr(name: str, ct: ColumnType) -> str:
    col = quote_ident(name)
    if ct.is_temporal:
        return f"CAST({col} AS CHAR)"
    if ct.kind == "float":
        return f"CAST({col} AS DOUBLE)"
    if ct.kind == "bit":
        return f"CAST({col} AS UNSIGNED)"
    return col


def _temporal(kind: str) -> Callable[[Any], Value]:
    def convert(cell: Any) -> Value:
        text = cell.decode() if isinstance(cell, bytes) else str(cell)
        if kind in ("datetime", "timestamp"):
            text = text.replace(" ", "T", 1)
        if kind == "timestamp":
            text += "Z"
        return Temporal(kind, text)  # type: ignore[arg-type]

    return convert


def _json(cell: Any) -> Value:
    # Numbers exact, as the reader parses them: integers beyond 64 bits, digits a double drops.
    return JsonDoc(parse_json_exact(cell if isinstance(cell, bytes | str) else str(cell)))


def _text(cell: Any) -> Value:
    return cell.decode() if isinstance(cell, bytes) else str(cell)


def _set(cell: Any) -> Value:
    text = _text(cell)
    assert isinstance(text, str)
    return frozenset(text.split(",")) if text else frozenset()


def _bytes(cell: Any) -> Value:
    return bytes(cell) if not isinstance(cell, str) else cell.encode("latin-1")


_CONVERT: dict[str, Callable[[Any], Value]] = {
    "int": int,
    "bit": int,
    "year": int,
    "decimal": lambda c: c if isinstance(c, Decimal) else Decimal(str(c)),
    "float": lambda c: float(float_text(float(c), single=True)),
    "double": float,
    "text": _text,
    "enum": _text,
    "set": _set,
    "binary": _bytes,
    "bytes": _bytes,
    "geometry": _bytes,
    "json": _json,
    "date": _temporal("date"),
    "datetime": _temporal("datetime"),
    "timestamp": _temporal("timestamp"),
    "time": _temporal("time"),
}


def converter(ct: ColumnType) -> Callable[[Any], Value]:
    """The cell converter of one column (NULL stays None)."""
    convert = _CONVERT[ct.kind]

    def cell_to_value(cell: Any) -> Value:
        return None if cell is None else convert(cell)

    return cell_to_value

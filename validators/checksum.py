"""Row checksums that MySQL computes in SQL and Python computes from a DynamoDB item, equal when
the rows are (pure: no I/O).

A row's digest is the first 64 bits of the MD5 of its mapped columns' canonical texts, each
written as ``<characters>:<text>`` (``N`` for NULL) and joined in column order. The canonical
text is what MySQL's ``CAST(... AS CHAR)`` gives, so a range of rows folds to
``(COUNT(*), BIT_XOR(digest))`` on the server without sending a row, and a DynamoDB item mapped
back to a row (:meth:`TableMapper.to_row`) folds to the same pair in Python:

=====================================  ===================================  ======================
column kind                            SQL                                  Python, from the value
=====================================  ===================================  ======================
integers, BIT, YEAR                    ``CAST(CAST(c AS UNSIGNED/SIGNED))`` ``str(int)``
DECIMAL(p, s)                          ``CAST(c AS CHAR)``                  exactly ``s`` decimals
CHAR, VARCHAR, TEXT, ENUM              ``CONVERT(c USING utf8mb4)``         the string
SET                                    ``NULLIF(CAST(c AS CHAR), '')``      members in definition
                                                                            order (empty: NULL)
BINARY, VARBINARY, BLOB, GEOMETRY      ``HEX(c)``                           upper-case hex
DATE, DATETIME, TIMESTAMP, TIME        ``CAST(c AS CHAR)`` (session UTC)    the text, ``T``->space,
                                                                            no ``Z``
=====================================  ===================================  ======================

FLOAT, DOUBLE and JSON have no SQL text that matches Python's exactly (MariaDB writes
``1e300`` where Python writes ``1e+300``; JSON documents keep their stored spelling), so a table
with such a mapped column is hashed in Python on both sides (:func:`sql_exact` says which).
The empty SET and the JSON ``null`` document read back from DynamoDB as NULL (DESIGN §3.2), so
they hash as NULL on both sides.

Ranges are primary-key intervals ``(lo, hi]`` in MySQL's order. Items are placed in them by
:func:`order_key`, which sorts like MySQL only for keys of numbers, dates and times, and bytes:
:func:`orderable` says whether a table's key qualifies.
"""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any

from replicator.events import JsonDoc, Row, Temporal, Value, json_text
from replicator.mapping.cells import quote_ident
from replicator.mapping.coltypes import ColumnType
from replicator.mapping.mapper import TableMapper
from replicator.mapping.values import decode_value

Column = tuple[str, ColumnType]
OrderKey = tuple[Any, ...]

_SQL_EXACT = frozenset(("int", "bit", "year", "decimal", "text", "enum", "set", "binary", "bytes",
                        "geometry", "date", "datetime", "timestamp", "time"))
_ORDERABLE = frozenset(("int", "bit", "year", "decimal", "date", "datetime", "timestamp", "binary", "bytes"))
NULL_TEXT = "N"


def sql_exact(columns: Sequence[Column]) -> bool:
    """Whether MySQL can compute the digests itself (else rows are streamed and hashed in Python)."""
    return all(ct.kind in _SQL_EXACT for _, ct in columns)


def orderable(pk: Sequence[Column]) -> bool:
    """Whether Python orders these key columns the way MySQL does (no collations involved)."""
    return bool(pk) and all(ct.kind in _ORDERABLE for _, ct in pk)


# --------------------------------------------------------------------------- SQL side

def _sql_text(name: str, ct: ColumnType) -> str:
    col = quote_ident(name)
    kind = ct.kind
    if kind in ("int", "year"):
        return f"CAST({col} AS CHAR)"
    if kind == "bit":
        return f"CAST(CAST({col} AS UNSIGNED) AS CHAR)"
    if kind in ("decimal", "date", "datetime", "timestamp", "time"):
        return f"CAST({col} AS CHAR)"
    if kind == "set":
        return f"NULLIF(CAST({col} AS CHAR), '')"
    if kind in ("binary", "bytes", "geometry"):
        return f"HEX({col})"
    return f"CONVERT({col} USING utf8mb4)"


def digest_sql(columns: Sequence[Column]) -> str:
    """The SQL expression of a row's 64-bit digest (an unsigned integer)."""
    parts = []
    for name, ct in columns:
        text = _sql_text(name, ct)
        parts.append(f"IFNULL(CONCAT(CHAR_LENGTH({text}), ':', {text}), '{NULL_TEXT}')")
    joined = f"CONCAT_WS(',', {', '.join(parts)})" if parts else "''"
    return f"CAST(CONV(LEFT(MD5({joined}), 16), 16, 10) AS UNSIGNED)"


# --------------------------------------------------------------------------- Python side

def value_text(ct: ColumnType, value: Value) -> str | None:
    """The canonical text of one value (None for NULL), as :func:`digest_sql` spells it."""
    if value is None:
        return None
    kind = ct.kind
    if isinstance(value, JsonDoc):
        return None if value.value is None else _json_text(value.value)
    if isinstance(value, frozenset):
        members = [m for m in ct.members if m in value] or sorted(value)
        return ",".join(members) or None
    if isinstance(value, Temporal):
        text = value.text.removesuffix("Z")
        return text.replace("T", " ", 1) if value.kind in ("datetime", "timestamp") else text
    if isinstance(value, bytes):
        return value.hex().upper()
    if isinstance(value, bool):
        return str(int(value))
    if kind == "decimal" and isinstance(value, Decimal | int):
        d = Decimal(value)
        if ct.scale:
            with localcontext() as ctx:
                ctx.prec = 100  # DECIMAL holds 65 digits: quantizing never rounds
                d = d.quantize(Decimal(1).scaleb(-ct.scale))
        return format(d, "f")
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _json_number(doc: Any) -> Any:
    """Numbers as one spelling each: DynamoDB gives a JSON ``1.0`` back as ``1`` (as Python's ``==`` does)."""
    if isinstance(doc, dict):
        return {k: _json_number(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_json_number(v) for v in doc]
    if isinstance(doc, bool) or doc is None or isinstance(doc, str):
        return doc
    if isinstance(doc, int | float | Decimal):
        d = Decimal(str(doc)) if isinstance(doc, float) else Decimal(doc)
        return int(d) if d == d.to_integral_value() else format(d.normalize(), "f")
    return doc


def _json_text(doc: Any) -> str:
    return json_text(_json_number(doc), sort_keys=True)


def row_digest(row: Row, columns: Sequence[Column]) -> int:
    """The 64-bit digest of a row (the same number :func:`digest_sql` gives for an exact table)."""
    parts = []
    for name, ct in columns:
        text = value_text(ct, row.get(name))
        parts.append(NULL_TEXT if text is None else f"{len(text)}:{text}")
    return int(hashlib.md5(",".join(parts).encode(), usedforsecurity=False).hexdigest()[:16], 16)


def order_key(values: Sequence[Value]) -> OrderKey:
    """Sorts primary-key values as MySQL does, for :func:`orderable` key columns."""
    out: list[Any] = []
    for v in values:
        out.append(v.text if isinstance(v, Temporal) else v)
    return tuple(out)


# --------------------------------------------------------------------------- folding

@dataclass
class Fold:
    """``(COUNT(*), BIT_XOR(digest))`` of a set of rows; XOR makes the order irrelevant."""

    count: int = 0
    xor: int = 0

    def add(self, digest: int) -> None:
        self.count += 1
        self.xor ^= digest

    def merge(self, other: Fold) -> None:
        self.count += other.count
        self.xor ^= other.xor

    def minus(self, part: Fold) -> Fold:
        """The rest of a range once ``part`` (a sub-range of it) is taken out."""
        return Fold(self.count - part.count, self.xor ^ part.xor)


@dataclass
class Range:
    """Primary-key interval ``(lo, hi]`` (None: unbounded) with each side's fold."""

    lo: tuple[Value, ...] | None
    hi: tuple[Value, ...] | None
    mysql: Fold = field(default_factory=Fold)
    dynamodb: Fold = field(default_factory=Fold)

    @property
    def equal(self) -> bool:
        return self.mysql == self.dynamodb

    def holds(self, key: OrderKey) -> bool:
        above = self.lo is None or key > order_key(self.lo)
        return above and (self.hi is None or key <= order_key(self.hi))


def locate(his: Sequence[OrderKey | None], key: OrderKey) -> int:
    """The index of the range ``(his[i-1], his[i]]`` holding ``key``; the last bound is None."""
    bounded = [h for h in his if h is not None]
    return bisect.bisect_left(bounded, key)


# --------------------------------------------------------------------------- straight from an item

_PLAIN_INT = re.compile(r"^-?\d+$")


def _fast_text(ct: ColumnType) -> Callable[[dict[str, Any]], str | None] | None:
    """The canonical text read straight off a default-mapped attribute, for the kinds where that is
    what decoding then :func:`value_text` give (the per-item cost of a scan); None: decode."""
    kind = ct.kind
    if kind in ("text", "enum"):
        return lambda av: str(av["S"]) if "S" in av else None
    if kind in ("int", "year"):
        def integer(av: dict[str, Any]) -> str | None:
            n = av.get("N")
            return str(int(n)) if isinstance(n, str) and _PLAIN_INT.match(n) else None
        return integer
    if kind in ("datetime", "timestamp"):
        return lambda av: str(av["S"]).removesuffix("Z").replace("T", " ", 1) if "S" in av else None
    if kind in ("date", "time"):
        return lambda av: str(av["S"]) if "S" in av else None
    if kind in ("binary", "bytes", "geometry"):
        return lambda av: bytes(av["B"]).hex().upper() if "B" in av else None
    if kind == "decimal" and ct.decimal_as_number:
        return lambda av: value_text(ct, Decimal(av["N"])) if "N" in av else None
    return None


def item_digester(mapper: TableMapper, columns: Sequence[Column]) -> Callable[[dict[str, Any]], int]:
    """``item -> row_digest(mapper.to_row(item), columns)``, without building the row where the
    attribute already holds the canonical text (the result is the same; anything else decodes)."""
    plan = []
    for name, ct in columns:
        override = mapper.override(name)
        fast = _fast_text(ct) if override == "default" else None
        plan.append((mapper.attributes[name], ct, override, fast))

    def digest(item: dict[str, Any]) -> int:
        parts = []
        for attr, ct, override, fast in plan:
            av = item.get(attr)
            text: str | None = None
            if av is not None and "NULL" not in av:
                text = fast(av) if fast is not None else None
                if text is None:
                    text = value_text(ct, decode_value(ct, override, av))
            parts.append(NULL_TEXT if text is None else f"{len(text)}:{text}")
        return int(hashlib.md5(",".join(parts).encode(), usedforsecurity=False).hexdigest()[:16], 16)

    return digest

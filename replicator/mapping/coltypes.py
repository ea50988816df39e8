"""Parse MySQL ``COLUMN_TYPE`` strings (as ``information_schema.COLUMNS`` spells them).

The reader puts the same strings in every change event (``ChangeEvent.columns``) and the
backfill reads them from ``information_schema``; both go through :func:`parse_column_type`.
Pure; no I/O. A type this product cannot carry raises :class:`UnmappableSchemaError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from replicator.errors import UnmappableSchemaError

Kind = Literal[
    "int", "bit", "year", "decimal", "float", "double", "text", "enum", "set",
    "binary", "bytes", "date", "datetime", "timestamp", "time", "json", "geometry",
]

_INTS = frozenset(("tinyint", "smallint", "mediumint", "int", "integer", "bigint"))
_TEXTS = frozenset((
    "char", "varchar", "tinytext", "text", "mediumtext", "longtext", "uuid", "inet4", "inet6",
    "nchar", "nvarchar",
))
_BLOBS = frozenset(("varbinary", "tinyblob", "blob", "mediumblob", "longblob"))
_GEOMETRY = frozenset((
    "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
    "multipolygon", "geometrycollection", "geomcollection",
))
_SIMPLE: dict[str, Kind] = {
    "float": "float", "double": "double", "real": "double", "double precision": "double",
    "date": "date", "datetime": "datetime", "timestamp": "timestamp", "time": "time",
    "year": "year", "json": "json", "bit": "bit",
}
_TYPE = re.compile(r"^\s*([a-z][a-z0-9 ]*?)\s*(?:\((.*)\))?\s*((?:unsigned|signed|zerofill|\s)*)$",
                   re.DOTALL | re.IGNORECASE)
_QUOTED = re.compile(r"'((?:[^']|'')*)'")

#: DynamoDB numbers hold 38 significant digits; wider DECIMALs are kept as exact text.
MAX_NUMBER_DIGITS = 38


@dataclass(frozen=True, slots=True)
class ColumnType:
    """What the mapping needs to know about one column's type."""

    text: str  # the COLUMN_TYPE string as given
    kind: Kind
    unsigned: bool = False
    length: int = 0  # BINARY(n) / VARBINARY(n) / CHAR(n) / VARCHAR(n) / BIT(n) width
    precision: int = 0  # DECIMAL(p, s)
    scale: int = 0
    fsp: int = 0  # fractional-second digits of DATETIME/TIMESTAMP/TIME
    members: tuple[str, ...] = ()  # ENUM / SET members
    base: str = ""  # the type's own name, lower case: "tinyint", "varchar", "mediumblob" ...

    @property
    def is_integer(self) -> bool:
        return self.kind in ("int", "bit", "year")

    @property
    def is_temporal(self) -> bool:
        return self.kind in ("date", "datetime", "timestamp", "time")

    @property
    def decimal_as_number(self) -> bool:
        return self.kind == "decimal" and self.precision <= MAX_NUMBER_DIGITS


def _ints(args: str, text: str) -> list[int]:
    try:
        return [int(a) for a in args.split(",")] if args.strip() else []
    except ValueError:
        raise UnmappableSchemaError(f"column type {text!r}: expected numeric arguments") from None


@lru_cache(maxsize=4096)
def parse_column_type(text: str) -> ColumnType:
    """``"decimal(12,2) unsigned"`` -> ``ColumnType(kind="decimal", precision=12, scale=2, ...)``."""
    m = _TYPE.match(text)
    if m is None:
        raise UnmappableSchemaError(f"column type {text!r} is not a MySQL COLUMN_TYPE this product can parse")
    base, args, flags = m.group(1).strip().lower(), m.group(2) or "", (m.group(3) or "").lower()
    unsigned = "unsigned" in flags
    if base in ("enum", "set"):
        members = tuple(s.replace("''", "'") for s in _QUOTED.findall(args))
        return ColumnType(text, "enum" if base == "enum" else "set", members=members, base=base)
    if base in _INTS:
        return ColumnType(text, "int", unsigned=unsigned, base=base)
    if base in ("decimal", "numeric", "dec", "fixed"):
        nums = _ints(args, text) or [10, 0]
        precision, scale = nums[0], nums[1] if len(nums) > 1 else 0
        return ColumnType(text, "decimal", unsigned=unsigned, precision=precision, scale=scale, base=base)
    if base in _TEXTS:
        nums = _ints(args, text)
        return ColumnType(text, "text", length=nums[0] if nums else 0, base=base)
    if base == "binary":
        nums = _ints(args, text)
        return ColumnType(text, "binary", length=nums[0] if nums else 1, base=base)
    if base in _BLOBS:
        nums = _ints(args, text)
        return ColumnType(text, "bytes", length=nums[0] if nums else 0, base=base)
    if base in _GEOMETRY:
        return ColumnType(text, "geometry", base=base)
    kind = _SIMPLE.get(base)
    if kind is None:
        raise UnmappableSchemaError(
            f"column type {text!r} has no DynamoDB mapping in this product; exclude the column "
            f"(tables[].exclude) or convert it in MySQL")
    nums = _ints(args, text)
    if kind in ("datetime", "timestamp", "time"):
        return ColumnType(text, kind, fsp=nums[0] if nums else 0, base=base)
    if kind == "bit":
        return ColumnType(text, kind, unsigned=True, length=nums[0] if nums else 1, base=base)
    return ColumnType(text, kind, unsigned=unsigned, base=base)

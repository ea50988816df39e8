"""Column and table shapes as the binlog's table-map event describes them (binlog_row_metadata=FULL).

Pure data: no client, no I/O. The adapter (:mod:`replicator.adapters.binlog`) fills a
:class:`ColumnSpec` per column from the table-map event; :func:`column_type` spells the
column the way ``information_schema.COLUMNS.COLUMN_TYPE`` does, which is what the change
event carries in ``columns`` and what the DynamoDB mapping parses.

What the binlog does not carry, and how it is filled in:

* integer display widths: the server's defaults (``int(11)``, ``bigint(20) unsigned``) on
  servers that print widths (MariaDB, MySQL < 8.0.19), none on MySQL 8.0.19+; a custom
  width such as ``int(5)`` or ZEROFILL is cosmetic and is not reproduced;
* JSON on MariaDB: the binlog says LONGTEXT. A column is ``json`` when the table has a
  ``json_valid(`col`)`` CHECK constraint (``information_schema.CHECK_CONSTRAINTS``, read at
  start-up and again after each DDL statement on a mapped database).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from replicator.events import schema_fingerprint


class T:
    """MySQL field type codes (``enum_field_types``), as the table-map event writes them."""

    DECIMAL = 0
    TINY = 1
    SHORT = 2
    LONG = 3
    FLOAT = 4
    DOUBLE = 5
    TIMESTAMP = 7
    LONGLONG = 8
    INT24 = 9
    DATE = 10
    TIME = 11
    DATETIME = 12
    YEAR = 13
    VARCHAR = 15
    BIT = 16
    TIMESTAMP2 = 17
    DATETIME2 = 18
    TIME2 = 19
    JSON = 245
    NEWDECIMAL = 246
    ENUM = 247
    SET = 248
    BLOB = 252
    VAR_STRING = 253
    STRING = 254
    GEOMETRY = 255


_INT_NAMES = {T.TINY: ("tinyint", 4, 3), T.SHORT: ("smallint", 6, 5), T.INT24: ("mediumint", 9, 8),
              T.LONG: ("int", 11, 10), T.LONGLONG: ("bigint", 20, 20)}
_BLOB_PREFIX = {1: "tiny", 2: "", 3: "medium", 4: "long"}
_GEOMETRY_NAMES = ("geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
                   "multipolygon", "geometrycollection")
BINARY_CHARSET = "binary"


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column of a table-map event, with what decoding and naming need."""

    name: str
    type: int  # a T code; ENUM/SET already resolved from the STRING metadata
    unsigned: bool = False
    charset: str | None = None  # MySQL charset name ("utf8mb4", "latin1", "binary"); None for non-text
    mbmaxlen: int = 1
    max_length: int = 0  # CHAR/VARCHAR/BINARY: bytes
    length_size: int = 0  # BLOB/TEXT/JSON/GEOMETRY: bytes of the length prefix
    precision: int = 0
    decimals: int = 0
    fsp: int = 0
    bits: int = 0
    size: int = 0  # ENUM/SET: bytes of the stored index/bitmask
    values: tuple[str, ...] = ()  # ENUM/SET members in order
    geometry_type: int = 0
    is_json: bool = False  # MariaDB LONGTEXT with a json_valid check
    # MariaDB's UUID / INET4 / INET6 ("uuid", "inet4", "inet6"): logged as BINARY(16/4), carried
    # as the text MariaDB returns for them (docs/design.md, type mapping); "" for any other column.
    text_type: str = ""

    @property
    def is_binary(self) -> bool:
        return self.charset == BINARY_CHARSET


@dataclass(frozen=True, slots=True)
class TableSchema:
    """A table as one table-map event describes it; rows of that event decode with this."""

    db: str
    table: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]
    typed_columns: tuple[tuple[str, str], ...] = field(default=())
    fingerprint: str = ""

    @property
    def source(self) -> str:
        return f"{self.db}.{self.table}"


def build_schema(db: str, table: str, columns: tuple[ColumnSpec, ...], primary_key: tuple[str, ...],
                 *, display_widths: bool = True) -> TableSchema:
    typed = tuple((c.name, column_type(c, display_widths=display_widths)) for c in columns)
    return TableSchema(db, table, columns, primary_key, typed, schema_fingerprint(typed))


def _quote_members(values: tuple[str, ...]) -> str:
    return ",".join("'" + v.replace("'", "''") + "'" for v in values)


def _with_fsp(name: str, fsp: int) -> str:
    return f"{name}({fsp})" if fsp else name


def column_type(c: ColumnSpec, *, display_widths: bool = True) -> str:
    """The column as ``information_schema.COLUMNS.COLUMN_TYPE`` spells it."""
    if c.text_type:
        return c.text_type
    t = c.type
    unsigned = " unsigned" if c.unsigned else ""
    if t in _INT_NAMES:
        name, signed_w, unsigned_w = _INT_NAMES[t]
        width = f"({unsigned_w if c.unsigned else signed_w})" if display_widths else ""
        return f"{name}{width}{unsigned}"
    simple = {T.FLOAT: "float", T.DOUBLE: "double", T.DATE: "date", T.JSON: "json"}
    if t in simple:
        return simple[t] + (unsigned if t in (T.FLOAT, T.DOUBLE) else "")
    if t in (T.NEWDECIMAL, T.DECIMAL):
        return f"decimal({c.precision},{c.decimals}){unsigned}"
    if t == T.YEAR:
        return "year(4)" if display_widths else "year"
    if t == T.BIT:
        return f"bit({c.bits})"
    if t in (T.DATETIME2, T.DATETIME):
        return _with_fsp("datetime", c.fsp)
    if t in (T.TIMESTAMP2, T.TIMESTAMP):
        return _with_fsp("timestamp", c.fsp)
    if t in (T.TIME2, T.TIME):
        return _with_fsp("time", c.fsp)
    if t == T.STRING:
        return f"binary({c.max_length})" if c.is_binary else f"char({c.max_length // max(c.mbmaxlen, 1)})"
    if t in (T.VARCHAR, T.VAR_STRING):
        if c.is_binary:
            return f"varbinary({c.max_length})"
        return f"varchar({c.max_length // max(c.mbmaxlen, 1)})"
    if t == T.BLOB:
        if c.is_json:
            return "json"
        return _BLOB_PREFIX.get(c.length_size, "") + ("blob" if c.is_binary else "text")
    if t == T.ENUM:
        return f"enum({_quote_members(c.values)})"
    if t == T.SET:
        return f"set({_quote_members(c.values)})"
    if t == T.GEOMETRY:
        return _GEOMETRY_NAMES[c.geometry_type] if 0 <= c.geometry_type < len(_GEOMETRY_NAMES) else "geometry"
    return f"unknown({t})"


@dataclass(frozen=True, slots=True)
class Catalog:
    """What decoding needs beyond the table-map event (read by :mod:`replicator.reader.server`)."""

    collations: dict[int, tuple[str, int]] = field(default_factory=dict)  # id -> (charset, mbmaxlen)
    json_columns: dict[str, frozenset[str]] = field(default_factory=dict)  # "db.table" -> columns
    display_widths: bool = True
    mariadb: bool = True
    # "db.table" -> {column: "uuid" | "inet4" | "inet6"} (MariaDB's types logged as BINARY(n))
    text_types: dict[str, dict[str, str]] = field(default_factory=dict)

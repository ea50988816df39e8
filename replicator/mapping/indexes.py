"""Secondary access patterns (DESIGN §3.5): one declared pattern, the same answer from either store.

A table mapping declares ``indexes: [{name: by_email, pk: email}, {name: by_created, pk:
country, sk: created_at}]``; ``pk`` and ``sk`` are column names. Each pattern becomes:

- a GSI named as the pattern, keyed by the columns' mapped attributes (after ``rename``) with
  their mapped types, projection ALL (:class:`GlobalIndex`, for CreateTable / UpdateTable);
- a MySQL query (:func:`mysql_condition`, :func:`mysql_query`): ``pk = %s`` (and ``sk = %s`` when
  given), ``sk IS NOT NULL``, ``ORDER BY sk, <primary key>``;
- a DynamoDB query (:func:`dynamodb_query_params`) on the GSI, tombstones filtered out;
- one order both agree on (:meth:`IndexMapping.sort_key`) to sort DynamoDB's pages into.

Why the answers agree:

- **Sparse.** A row whose index column is NULL is in neither answer: MySQL's ``=`` and ``IS NOT
  NULL`` leave it out, and :meth:`TableMapper.to_item` omits NULL index attributes (even with
  ``null_mode: explicit``, since DynamoDB refuses a NULL-typed GSI key), so the GSI does not
  hold the item.
- **Exact match.** String columns are compared as their utf8mb4 bytes (``BINARY CONVERT(c USING
  utf8mb4) = BINARY %s``) next to the plain ``c = %s`` that lets MySQL use its index, so a
  case-insensitive collation or PAD SPACE does not return rows DynamoDB's exact match would not.
- **Same order.** Strings are ordered by those bytes in MySQL; UTF-8 byte order is code-point
  order, which is how DynamoDB orders S keys and how Python compares ``str``. Binary strings
  are bytes on all three sides, numbers are numbers, DATE/DATETIME/TIMESTAMP texts have a fixed
  width so their text order is their time order. Ties are broken by the primary key.
- **Refused types.** Only columns whose mapped attribute is S, N or B *and* sorts the way MySQL
  sorts the column can key a pattern (:func:`index_key_type`); the rest stop at start-up with a
  :class:`ConfigError` (``TableMapper.validate``).

Values are in the event value model (:mod:`replicator.events`), as the mapping takes them; the
application client converts PyMySQL values first (:mod:`replicator.mapping.pytypes`). A
TIMESTAMP value is UTC text: run the MySQL query on a session whose ``time_zone`` is
``'+00:00'`` (``replicator.adapters.mysql.connect(..., utc=True)``). GSI reads are eventually
consistent (DynamoDB offers no consistent read on a GSI).

A row whose index attribute DynamoDB cannot take as a GSI key (an empty string or binary, a
value over the key size limits, a DOUBLE beyond DynamoDB's number range) cannot be written at
all: :meth:`TableMapper.to_item` raises :class:`UnmappableValueError` (the writer dead-letters
it), and a query for such a value raises :class:`KeyShapeError`.

Pure; no I/O.
"""

from __future__ import annotations

import string
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from replicator.errors import ConfigError, KeyShapeError, MappingError
from replicator.events import Temporal, Value
from replicator.mapping.coltypes import ColumnType
from replicator.mapping.names import DELETED_ATTR, TABLE_ATTR
from replicator.mapping.values import AttributeValue, encode_value
from replicator.settings import ColumnType as Override

if TYPE_CHECKING:
    from replicator.mapping.mapper import Item, TableMapper

KeyType = Literal["S", "N", "B"]
KeyRole = Literal["HASH", "RANGE"]

#: DynamoDB's limits on one GSI key value (UTF-8 bytes of an S, bytes of a B).
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024

# MariaDB types spelled as text in COLUMN_TYPE but sorted by their binary form, not their text.
_BINARY_ORDERED_TEXT = frozenset(("uuid", "inet4", "inet6"))


# --------------------------------------------------------------------------- which columns can key a GSI


def index_key_type(ct: ColumnType, override: Override, role: KeyRole) -> tuple[KeyType | None, str]:
    """``(type, "")``: the attribute type a column keys a GSI with; ``(None, why)`` when it cannot."""
    kind = ct.kind
    if override == "bool":
        return None, "types override 'bool' maps it to BOOL, which cannot key a GSI"
    if kind in ("int", "bit", "year", "float", "double") or (kind == "decimal" and ct.decimal_as_number):
        if override == "string":
            return None, "types override 'string' stores the number as text, which sorts '10' before '9'"
        return "N", ""
    if kind == "decimal":
        return None, (f"DECIMAL({ct.precision},{ct.scale}) is wider than DynamoDB's 38 digits, so it is kept "
                      f"as text (S), which does not sort like a number")
    if kind == "text":
        if override == "number":
            return None, ("types override 'number' compares numbers in DynamoDB ('1.0' = '1') but text "
                          "in MySQL")
        if role == "RANGE" and ct.base in _BINARY_ORDERED_TEXT:
            return None, f"MariaDB sorts {ct.base.upper()} values by their binary form, not by their text"
        return "S", ""
    if kind in ("binary", "bytes"):
        return "B", ""
    if kind in ("date", "datetime", "timestamp"):
        return ("N" if override == "epoch_ms" else "S"), ""
    reasons = {
        "time": "its text ('-01:00:00', '100:00:00') does not sort like MySQL's TIME",
        "enum": "MySQL sorts an ENUM by member position, DynamoDB by text",
        "set": "a SET maps to a string set (SS), which cannot key a GSI",
        "json": "a JSON document maps to a document type, which cannot key a GSI",
        "geometry": "geometry bytes have no order or equality that matches MySQL's",
    }
    return None, reasons.get(kind, f"a {ct.text} column cannot key a GSI")


# --------------------------------------------------------------------------- the GSI


@dataclass(frozen=True, slots=True)
class IndexKey:
    """One key attribute of a GSI and the column it comes from."""

    column: str
    attribute: str
    role: KeyRole
    type: KeyType


@dataclass(frozen=True, slots=True)
class GlobalIndex:
    """What CreateTable / UpdateTable need to know about one GSI (projection ALL)."""

    name: str
    key: tuple[IndexKey, ...]

    @property
    def schema(self) -> tuple[tuple[str, str, str], ...]:
        """``((attribute, role, type), ...)``: what two declarations of one GSI must agree on."""
        return tuple((k.attribute, k.role, k.type) for k in self.key)

    def attribute_definitions(self) -> list[dict[str, str]]:
        return [{"AttributeName": k.attribute, "AttributeType": k.type} for k in self.key]

    def definition(self) -> dict[str, Any]:
        """One element of ``GlobalSecondaryIndexes`` (CreateTable) or of an UpdateTable ``Create``."""
        return {
            "IndexName": self.name,
            "KeySchema": [{"AttributeName": k.attribute, "KeyType": k.role} for k in self.key],
            "Projection": {"ProjectionType": "ALL"},
        }


# --------------------------------------------------------------------------- one access pattern


@dataclass(frozen=True)
class IndexMapping:
    """One declared access pattern of one table (see the module docstring)."""

    name: str
    pk: IndexKey
    sk: IndexKey | None
    mapper: TableMapper = field(repr=False, compare=False)

    @property
    def key(self) -> tuple[IndexKey, ...]:
        return (self.pk,) if self.sk is None else (self.pk, self.sk)

    @property
    def columns(self) -> tuple[str, ...]:
        """The pattern's key columns: ``(pk,)`` or ``(pk, sk)``."""
        return tuple(k.column for k in self.key)

    @property
    def gsi(self) -> GlobalIndex:
        return GlobalIndex(self.name, self.key)

    @property
    def where(self) -> str:
        """Where the pattern is declared, as a config path for messages."""
        return f"tables[source={self.mapper.table}].indexes[{self.name}]"

    def sort_key(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """The order of :func:`mysql_query`'s ``ORDER BY``: the sk value, then the primary key.

        Sort the rows of every DynamoDB page with it (``rows.sort(key=index.sort_key)``) to get
        MySQL's order; strings compare by code point, as the MySQL side compares utf8mb4 bytes.
        """
        columns = ((self.sk.column,) if self.sk is not None else ()) + self.mapper.identity_columns
        return tuple(_order_value(self.mapper.types[c], row.get(c)) for c in columns)


def build_indexes(mapper: TableMapper) -> tuple[IndexMapping, ...]:
    """The table's declared patterns; lenient (``validate_indexes`` reports what is wrong)."""

    def key(column: str, role: KeyRole) -> IndexKey:
        ct = mapper.types.get(column)
        typ = index_key_type(ct, mapper.override(column), role)[0] if ct is not None else None
        return IndexKey(column, mapper.mapping.rename.get(column, column), role, typ or "S")

    return tuple(
        IndexMapping(spec.name, key(spec.pk, "HASH"),
                     None if spec.sk is None else key(spec.sk, "RANGE"), mapper)
        for spec in mapper.mapping.indexes)


def validate_indexes(mapper: TableMapper) -> None:
    """Check every declared pattern against the columns; a :class:`ConfigError` says what to do."""
    known = sorted(mapper.types)
    for spec in mapper.mapping.indexes:
        where = f"tables[source={mapper.table}].indexes[{spec.name}]"
        keys: tuple[tuple[str, str | None, KeyRole], ...] = (
            ("pk", spec.pk, "HASH"), ("sk", spec.sk, "RANGE"))
        for option, column, role in keys:
            if column is None:
                continue
            ct = mapper.types.get(column)
            if ct is None:
                raise ConfigError(f"{where}.{option}: {column!r} is not a column of {mapper.table} (pk and "
                                  f"sk name columns, not templates); the table's columns are {known}")
            if column in mapper.mapping.exclude:
                raise ConfigError(f"{where}.{option}: column {column!r} is excluded (tables[].exclude); an "
                                  f"access pattern needs its columns in DynamoDB: keep the column or drop "
                                  f"the access pattern")
            override = mapper.override(column)
            typ, why = index_key_type(ct, override, role)
            if typ is None:
                shown = ct.text + (f" with types override {override!r}" if override != "default" else "")
                raise ConfigError(f"{where}.{option}: column {column!r} ({shown}) cannot key a GSI: {why}; "
                                  f"declare the access pattern on another column, or drop it")
    ours = {k.attribute: (k.type, ix.name) for ix in mapper.indexes for k in ix.key}
    for attr in mapper.key_attributes:
        if attr.name in ours and ours[attr.name][0] != attr.type:
            typ, name = ours[attr.name]
            raise ConfigError(f"tables[source={mapper.table}].indexes[{name}]: attribute {attr.name!r} is "
                              f"the table's {attr.role} key of type {attr.type} but would key the GSI as "
                              f"{typ}; rename the column (tables[].rename)")


def template_prefix(template: str | None) -> str:
    """The literal text a key template starts with: ``"USER#{id}"`` -> ``"USER#"``; ``""`` for none."""
    prefix = ""
    for literal, field_name, _, _ in string.Formatter().parse(template or ""):
        prefix += literal
        if field_name is not None:
            break
    return prefix


# --------------------------------------------------------------------------- row -> item: the GSI keys


def index_key_problem(index: IndexMapping, item: Item) -> tuple[str, str, str] | None:
    """Why DynamoDB would refuse ``item`` for this GSI: ``(column, what, reason)``; None if it takes it.

    An absent attribute is fine (the item is simply not in the index: sparse).
    """
    for k in index.key:
        av = item.get(k.attribute)
        if av is None:
            continue
        ((tag, payload),) = av.items()
        if tag != k.type:
            return (k.column, f"maps to {tag} here but keys GSI {index.name!r} as {k.type} (a value beyond "
                              f"DynamoDB's number range?)", "index-key-type")
        if tag in ("S", "B"):
            size = len(payload.encode("utf-8")) if tag == "S" else len(payload)
            limit = MAX_PARTITION_KEY_BYTES if k.role == "HASH" else MAX_SORT_KEY_BYTES
            if size == 0:
                return (k.column, f"is empty, and DynamoDB refuses an empty GSI key (GSI {index.name!r}); "
                                  f"store NULL instead of an empty value, or drop the access pattern",
                        "empty-index-key")
            if size > limit:
                return (k.column, f"is {size} bytes, over DynamoDB's {limit}-byte limit for a GSI "
                                  f"{'partition' if k.role == 'HASH' else 'sort'} key (GSI {index.name!r})",
                        "index-key-too-large")
    return None


# --------------------------------------------------------------------------- queries


def _query_values(index: IndexMapping, values: Mapping[str, Value]) -> list[tuple[IndexKey, Value]]:
    """The given key values in key order; a :class:`KeyShapeError` names the pattern's columns."""
    shape = f"{index.pk.column!r}" + (f" (and optionally {index.sk.column!r})" if index.sk else "")
    if not isinstance(values, Mapping):
        raise KeyShapeError(f"{index.mapper.table} access pattern {index.name!r} takes a dict of {shape}, "
                            f"got {type(values).__name__}")
    unknown = sorted(set(values) - set(index.columns))
    if unknown or index.pk.column not in values:
        raise KeyShapeError(f"{index.mapper.table} access pattern {index.name!r} is queried by {shape}; "
                            f"got {sorted(values)}")
    out: list[tuple[IndexKey, Value]] = []
    for k in index.key:
        if k.column not in values:
            continue
        value = _normalise(index.mapper.types[k.column], values[k.column])
        if value is None:
            raise KeyShapeError(f"{index.mapper.table} access pattern {index.name!r}: {k.column!r} is None; "
                                f"rows whose {k.column} is NULL are not in the pattern (it is sparse)")
        out.append((k, value))
    return out


def _normalise(ct: ColumnType, value: Value) -> Value:
    """A query value in the exact form stored values have: temporal texts carry ``fsp`` digits."""
    if isinstance(value, Temporal) and value.kind in ("datetime", "timestamp", "time"):
        body = value.text.removesuffix("Z")
        main, _, frac = body.partition(".")
        if len(frac) > ct.fsp and not frac[ct.fsp:].strip("0"):
            frac = frac[:ct.fsp]
        elif len(frac) < ct.fsp:
            frac = frac.ljust(ct.fsp, "0")
        text = main + ("." + frac if frac else "")
        return Temporal(value.kind, text + ("Z" if value.kind == "timestamp" else ""))
    if isinstance(value, bool):
        return int(value)
    return value


def _encode(index: IndexMapping, k: IndexKey, value: Value) -> AttributeValue:
    mapper = index.mapper
    try:
        av = encode_value(mapper.types[k.column], mapper.override(k.column), value)
    except MappingError as exc:
        raise KeyShapeError(f"{mapper.table} access pattern {index.name!r}: {k.column!r}: {exc}") from exc
    assert av is not None  # None was refused by _query_values
    problem = index_key_problem(index, {k.attribute: av})
    if problem is not None:
        raise KeyShapeError(f"{mapper.table} access pattern {index.name!r}: value {value!r} of {k.column!r} "
                            f"{problem[1]}; no row can have it in DynamoDB")
    return av


def dynamodb_query_params(table_name: str, index: IndexMapping, values: Mapping[str, Value],
                          start_key: Item | None = None) -> dict[str, Any]:
    """Keyword arguments of ``client.query`` for one page of the pattern's GSI.

    Tombstones are filtered out, and so are the items of other sources of a shared table
    (``_table``; an item without it, written by an earlier release, counts as the pattern's
    own). Pass each page's ``LastEvaluatedKey`` back as ``start_key``; sort the collected rows with
    :meth:`IndexMapping.sort_key`.
    """
    given = _query_values(index, values)
    names = {"#deleted": DELETED_ATTR}
    attr_values: dict[str, AttributeValue] = {}
    conditions = []
    for (k, value), ph in zip(given, ("pk", "sk"), strict=False):
        names[f"#{ph}"] = k.attribute
        attr_values[f":{ph}"] = _encode(index, k, value)
        conditions.append(f"#{ph} = :{ph}")
    # A GSI declared by several sources of a shared table holds the items of each: keep ours.
    names["#table"] = TABLE_ATTR
    attr_values[":table"] = {"S": index.mapper.table}
    filters = ["attribute_not_exists(#deleted)", "(attribute_not_exists(#table) OR #table = :table)"]
    params: dict[str, Any] = {
        "TableName": table_name,
        "IndexName": index.name,
        "KeyConditionExpression": " AND ".join(conditions),
        "FilterExpression": " AND ".join(filters),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": attr_values,
    }
    if start_key:
        params["ExclusiveStartKey"] = start_key
    return params


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _is_string(ct: ColumnType) -> bool:
    return ct.kind in ("text", "enum", "set")


def _compared(ct: ColumnType, column: str) -> str:
    """How a column is compared and ordered so that MySQL agrees with DynamoDB and Python."""
    return f"BINARY CONVERT({quote(column)} USING utf8mb4)" if _is_string(ct) else quote(column)


def _sql_param(ct: ColumnType, value: Value) -> Any:
    if isinstance(value, Temporal):
        return value.text.removesuffix("Z").replace("T", " ")
    if ct.kind == "float" and isinstance(value, int | float):
        # The stored single widened to double, which is what MySQL compares a FLOAT column as.
        return struct.unpack("<f", struct.pack("<f", float(value)))[0]
    if ct.kind == "text" and isinstance(value, bytes):
        return value.decode("utf-8", errors="strict")
    return value


def mysql_condition(index: IndexMapping, values: Mapping[str, Value]) -> tuple[str, str, tuple[Any, ...]]:
    """``(where, order_by, params)`` of the pattern's MySQL query, for a caller with its own SELECT list."""
    mapper = index.mapper
    conditions: list[str] = []
    params: list[Any] = []
    for k, value in _query_values(index, values):
        ct = mapper.types[k.column]
        _encode(index, k, value)  # what DynamoDB cannot hold is refused on both sides alike
        param = _sql_param(ct, value)
        conditions.append(f"{quote(k.column)} = %s")
        params.append(param)
        if _is_string(ct):
            conditions.append(f"{_compared(ct, k.column)} = BINARY %s")
            params.append(param)
    order = [] if index.sk is None else [index.sk.column]
    if index.sk is not None:
        conditions.append(f"{quote(index.sk.column)} IS NOT NULL")
    order += [c for c in mapper.identity_columns if c not in order]
    order_by = ", ".join(_compared(mapper.types[c], c) for c in order)
    return " AND ".join(conditions), order_by, tuple(params)


def mysql_query(index: IndexMapping, values: Mapping[str, Value]) -> tuple[str, tuple[Any, ...]]:
    """``(sql, params)``: the mapped columns of the pattern's rows, in :meth:`IndexMapping.sort_key` order.

    Cells come back as PyMySQL gives them. Needs a session in UTC when a key column is a TIMESTAMP.
    """
    mapper = index.mapper
    where, order_by, params = mysql_condition(index, values)
    columns = ", ".join(quote(c) for c in mapper.attributes)
    db, table = mapper.mapping.database, mapper.mapping.table
    sql = (f"SELECT {columns} FROM {quote(db)}.{quote(table)} "  # noqa: S608 -- identifiers quoted
           f"WHERE {where} ORDER BY {order_by}")
    return sql, params


# --------------------------------------------------------------------------- the shared order


def _time_micros(text: str) -> int:
    negative = text.startswith("-")
    hours, minutes, seconds = text.lstrip("-").split(":")
    whole, _, frac = seconds.partition(".")
    micros = ((int(hours) * 60 + int(minutes)) * 60 + int(whole)) * 1_000_000 + int((frac + "000000")[:6])
    return -micros if negative else micros


def _order_value(ct: ColumnType, value: Any) -> tuple[Any, ...]:
    """One column's place in the order; NULL first, as MySQL sorts it ascending."""
    if value is None:
        return (0,)
    kind = ct.kind
    if kind in ("int", "bit", "year"):
        return (1, int.from_bytes(value, "big") if isinstance(value, bytes) else int(value))
    if kind in ("decimal", "float", "double"):
        return (1, value if isinstance(value, Decimal) else Decimal(repr(float(value))))
    if kind == "set" and not isinstance(value, str):
        return (1, ",".join(m for m in ct.members if m in value))
    if kind in ("binary", "bytes", "geometry"):
        data = bytes(value)
        return (1, data.ljust(ct.length, b"\0") if kind == "binary" else data)
    if kind == "time":
        if isinstance(value, timedelta):
            return (1, (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds)
        return (1, _time_micros(value.text if isinstance(value, Temporal) else str(value)))
    if isinstance(value, Temporal):
        return (1, value.text.removesuffix("Z"))
    if isinstance(value, datetime | date):
        return (1, value.isoformat())
    return (1, value)

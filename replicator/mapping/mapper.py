"""Row <-> item for one table: key templates, rename, exclude, type overrides, null mode.

:class:`TableMapper` is built from a table's mapping config and its columns (name, MySQL
``COLUMN_TYPE``) and is the one mapping shared by the writer, the validators, the backfill
and the shim. Pure; no I/O. ``validate()`` checks the config against the columns (unknown
column, impossible key) and raises :class:`ConfigError` (exit 2) so a bad config stops at
start-up; mapping a row that breaks a rule raises a :class:`MappingError` subclass naming the
table, the key and the reason, which the writer sends to the dead-letter topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from replicator.errors import (
    ConfigError,
    ItemTooLargeError,
    MappingError,
    MissingKeyError,
    UnknownAccessPatternError,
    UnmappableValueError,
)
from replicator.events import JsonDoc, Row, Temporal, Value
from replicator.mapping.coltypes import ColumnType, parse_column_type
from replicator.mapping.indexes import IndexMapping, build_indexes, index_key_problem, validate_indexes
from replicator.mapping.names import METADATA_ATTRS, PK_ATTR, SK_ATTR, TABLE_ATTR
from replicator.mapping.size import MAX_ITEM_BYTES, item_size
from replicator.mapping.templates import (
    TemplateValueError,
    parse_template,
    placeholders,
    render_part,
    template_fields,
)
from replicator.mapping.values import (
    OVERRIDES_ALLOWED,
    AttributeValue,
    decimal_text,
    decode_value,
    encode_value,
    float_text,
)
from replicator.settings import ColumnType as Override
from replicator.settings import TableMapping

Item = dict[str, AttributeValue]


@dataclass(frozen=True, slots=True)
class KeyAttribute:
    """One attribute of the DynamoDB key schema and where its value comes from."""

    name: str
    role: str  # "HASH" or "RANGE"
    type: str  # "S" | "N" | "B"
    template: str | None = None  # a "USER#{id}" template, or None: the column's own value
    column: str | None = None  # the column, when the key is a column's own value


def template_text(value: Value) -> str | None:
    """How a value reads inside a key template; ``None`` when it cannot key an item (NULL, empty)."""
    if value is None:
        return None
    if isinstance(value, bool):
        text = str(int(value))
    elif isinstance(value, int | str):
        text = str(value)
    elif isinstance(value, Decimal):
        text = decimal_text(value)
    elif isinstance(value, float):
        text = float_text(value, single=False)
    elif isinstance(value, bytes):
        text = value.hex()
    elif isinstance(value, Temporal):
        text = value.text
    elif isinstance(value, frozenset):
        text = ",".join(sorted(value))
    elif isinstance(value, JsonDoc):
        text = orjson.dumps(value.value).decode()
    else:
        text = str(value)
    return text or None


class TableMapper:
    """The mapping of one source table at one schema (see the module docstring)."""

    def __init__(self, mapping: TableMapping, columns: tuple[tuple[str, str], ...],
                 primary_key: tuple[str, ...]) -> None:
        # No default: without the primary key a table keyed by it would map every row to one key.
        self.mapping = mapping
        self.columns = tuple(columns)
        self.primary_key = tuple(primary_key)
        self.types: dict[str, ColumnType] = {name: parse_column_type(typ) for name, typ in self.columns}
        excluded = set(mapping.exclude)
        self.attributes: dict[str, str] = {
            name: mapping.rename.get(name, name) for name, _ in self.columns if name not in excluded
        }
        self._overrides: dict[str, Override] = dict(mapping.types)
        self.key_attributes = self._key_attributes()
        #: The declared access patterns (``tables[].indexes``), GSIs in DynamoDB.
        self.indexes: tuple[IndexMapping, ...] = build_indexes(self)
        # NULL in one of these is left out of the item (DynamoDB refuses a NULL-typed GSI key).
        self._index_columns = frozenset(c for ix in self.indexes for c in ix.columns)

    @property
    def table(self) -> str:
        return self.mapping.source

    def override(self, column: str) -> Override:
        return self._overrides.get(column, "default")

    @property
    def identity_columns(self) -> tuple[str, ...]:
        """The columns that tell rows apart: the primary key, else the key templates' columns."""
        if self.primary_key:
            return self.primary_key
        fields = (f for a in self.key_attributes if a.template for f in template_fields(a.template))
        return tuple(dict.fromkeys(fields))

    def index(self, name: str) -> IndexMapping:
        """The declared access pattern ``name``; :class:`UnknownAccessPatternError` lists the declared."""
        for ix in self.indexes:
            if ix.name == name:
                return ix
        declared = [ix.name for ix in self.indexes]
        raise UnknownAccessPatternError(
            f"{self.table} has no access pattern {name!r}; declared: {declared or 'none'} "
            f"(tables[source={self.table}].indexes)")

    # ----------------------------------------------------------------- configuration

    def _key_attributes(self) -> tuple[KeyAttribute, ...]:
        spec = self.mapping.key
        if spec.pk is not None:
            attrs = [KeyAttribute(PK_ATTR, "HASH", "S", template=spec.pk)]
            if spec.sk is not None:
                attrs.append(KeyAttribute(SK_ATTR, "RANGE", "S", template=spec.sk))
            return tuple(attrs)
        attrs = []
        for role, column in zip(("HASH", "RANGE"), self.primary_key, strict=False):
            name = self.mapping.rename.get(column, column)
            attrs.append(KeyAttribute(name, role, self._scalar_type(column), column=column))
        return tuple(attrs)

    def _scalar_type(self, column: str) -> str:
        ct = self.types.get(column)
        if ct is None:
            return "S"
        override = self.override(column)
        if override in ("epoch_ms", "number") or (override == "default" and (
                ct.is_integer or ct.decimal_as_number or ct.kind in ("float", "double"))):
            return "N"
        if override == "default" and ct.kind in ("binary", "bytes", "geometry"):
            return "B"
        return "S"

    def validate(self) -> None:
        """Check the config against the columns; a :class:`ConfigError` names the option to fix."""
        where = f"tables[source={self.table}]"
        known = {name for name, _ in self.columns}
        for option, names in (("exclude", self.mapping.exclude), ("rename", self.mapping.rename),
                              ("types", self.mapping.types)):
            unknown = sorted(set(names) - known)
            if unknown:
                raise ConfigError(f"{where}.{option} names unknown column(s) {unknown}; "
                                  f"the table's columns are {sorted(known)}")
        spec = self.mapping.key
        if spec.sk is not None and spec.pk is None:
            raise ConfigError(f"{where}.key.sk is set without key.pk; give both templates")
        for option, template in (("pk", spec.pk), ("sk", spec.sk)):
            if template is None:
                continue
            unknown = sorted(set(template_fields(template)) - known)
            if unknown:
                raise ConfigError(f"{where}.key.{option} template {template!r} names unknown column(s) "
                                  f"{unknown}; the table's columns are {sorted(known)}")
            for ph in placeholders(template):
                ct = self.types[ph.column]
                fits = {"text": True, "integer": ct.kind == "int",
                        "temporal": ct.kind in ("date", "datetime", "timestamp")}[ph.kind]
                if not fits:
                    raise ConfigError(f"{where}.key.{option} template {template!r}: format {ph.format!r} "
                                      f"does not apply to {ph.column!r} ({ct.kind}); 0<N>d is for integer "
                                      "columns, %Y-%m-%d-style formats for DATE/DATETIME/TIMESTAMP")
        if spec.pk is None:
            if not self.primary_key:
                raise ConfigError(f"{where}: the table has no primary key; give a key.pk template")
            if len(self.primary_key) > 2:
                raise ConfigError(f"{where}: primary key {list(self.primary_key)} has more than two "
                                  f"columns; give key.pk (and key.sk) templates, "
                                  f"e.g. pk: \"{{{self.primary_key[0]}}}\"")
            for column in self.primary_key:
                if column in self.mapping.exclude:
                    raise ConfigError(f"{where}.exclude removes key column {column!r}; keep it or use key.pk")
        for column, override in self.mapping.types.items():
            kind = self.types[column].kind
            if override != "default" and kind not in OVERRIDES_ALLOWED[override]:
                raise ConfigError(f"{where}.types.{column}: override {override!r} does not apply to a "
                                  f"{self.types[column].text} column")
        seen: dict[str, str] = {}
        for column, attr in self.attributes.items():
            if attr in METADATA_ATTRS:
                raise ConfigError(f"{where}: column {column!r} maps to reserved attribute {attr!r}; "
                                  f"rename it (tables[].rename)")
            if attr in seen:
                raise ConfigError(f"{where}.rename: columns {seen[attr]!r} and {column!r} "
                                  f"both map to {attr!r}")
            if spec.pk is not None and attr in (PK_ATTR, SK_ATTR):
                raise ConfigError(f"{where}: column {column!r} maps to key attribute {attr!r}; rename it")
            seen[attr] = column
        validate_indexes(self)

    # ----------------------------------------------------------------- row -> item

    def key_text(self, row: Row) -> str:
        """A short readable key for messages: the primary-key columns (or the template columns)."""
        return ",".join(f"{c}={template_text(row.get(c))}" for c in self.identity_columns)

    def _render(self, template: str, row: Row) -> str:
        out = []
        for literal, ph in parse_template(template):
            out.append(literal)
            if ph is None:
                continue
            if ph.column not in row:
                raise self._error(MissingKeyError, row, f"key template {template!r} names column "
                                  f"{ph.column!r} that the row does not have", "template-column-missing")
            value = row[ph.column]
            try:
                text = render_part(ph, value, template_text(value))
            except TemplateValueError as exc:
                raise self._error(MissingKeyError, row, f"key template {template!r}: {exc}",
                                  "key-format") from exc
            if text is None:
                raise self._error(MissingKeyError, row, f"key column {ph.column!r} is NULL or empty (give "
                                  f"the placeholder a default: {{{ph.column}|...}})", "null-or-empty-key")
            out.append(text)
        return "".join(out)

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The columns the DynamoDB key is made of, in key order (templates' or the key columns)."""
        cols: list[str] = []
        for attr in self.key_attributes:
            cols.extend(template_fields(attr.template) if attr.template else [attr.column or ""])
        return tuple(cols)

    def key(self, row: Row) -> Item:
        """The DynamoDB key of a row; a NULL or empty key part raises :class:`MissingKeyError`."""
        key: Item = {}
        for attr in self.key_attributes:
            if attr.template is not None:
                key[attr.name] = {"S": self._render(attr.template, row)}
                continue
            assert attr.column is not None
            av = self._encode(attr.column, row.get(attr.column), row)
            tag, payload = next(iter(av.items())) if av is not None else ("NULL", None)
            if tag == "NULL" or (tag in ("S", "B") and not payload):
                raise self._error(MissingKeyError, row, f"key column {attr.column!r} is NULL or empty",
                                  "null-or-empty-key")
            if tag not in ("S", "N", "B"):
                raise self._error(MissingKeyError, row, f"key column {attr.column!r} maps to "
                                  f"{tag}, not a key type", "bad-key-type")
            key[attr.name] = {tag: payload}
        return key

    def to_item(self, row: Row, *, metadata: Item | None = None) -> Item:
        """The item for a row: key attributes, ``_table``, one attribute per mapped column, then
        ``metadata``.

        A NULL column is an explicit NULL attribute (``null_mode: explicit``) or left out (``omit``);
        a NULL in a column that keys an access pattern is always left out (a sparse GSI).
        """
        item = self.key(row)
        item[TABLE_ATTR] = {"S": self.table}
        explicit = self.mapping.null_mode == "explicit"
        for column, attr in self.attributes.items():
            if attr in item:
                continue  # a default key column is already there
            av = self._encode(column, row.get(column), row)
            if av is not None:
                item[attr] = av
            elif explicit and column not in self._index_columns:
                item[attr] = {"NULL": True}
        for index in self.indexes:
            problem = index_key_problem(index, item)
            if problem is not None:
                column, what, reason = problem
                raise self._error(UnmappableValueError, row, f"column {column!r} {what}", reason)
        if metadata:
            item.update(metadata)
        size = item_size(item)
        if size > MAX_ITEM_BYTES:
            raise self._error(ItemTooLargeError, row, f"item is {size} bytes, over DynamoDB's "
                              f"{MAX_ITEM_BYTES} byte limit", "item-too-large")
        return item

    def _encode(self, column: str, value: Value, row: Row) -> AttributeValue | None:
        ct = self.types.get(column)
        if ct is None:
            raise self._error(MissingKeyError, row, f"column {column!r} is not in the table's schema",
                              "unknown-column")
        try:
            return encode_value(ct, self.override(column), value)
        except MappingError as exc:
            raise self._error(type(exc), row, f"column {column!r}: {exc}", exc.reason) from exc

    def _error(self, cls: type[MappingError], row: Row, what: str, reason: str) -> MappingError:
        key = self.key_text(row)
        return cls(f"{self.table} key ({key}): {what}", table=self.table, key=key, reason=reason)

    # ----------------------------------------------------------------- item -> row

    def to_row(self, item: dict[str, Any]) -> Row:
        """The row an item was made from (mapped columns only, in column order)."""
        row: Row = {}
        for column, attr in self.attributes.items():
            row[column] = decode_value(self.types[column], self.override(column), item.get(attr))
        return row

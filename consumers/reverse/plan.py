"""The SQL of one table and its values as PyMySQL parameters: pure, no I/O.

An upsert writes every mapped column of the row, so applying one twice, or an older one
again before the newer (a replay after a crash), ends in the same row: idempotent by primary
key. Two forms, chosen per table:

- no unique key besides the primary key: ``INSERT ... ON DUPLICATE KEY UPDATE`` every
  mapped column (PyMySQL sends a batch as one multi-row statement);
- other unique keys: ``ON DUPLICATE KEY UPDATE`` would update *the row holding the other
  unique value* (another primary key), so the rows that exist are updated by primary key and
  the others inserted; a clash on a unique key is then a duplicate-key error, retried and at
  last dead-lettered, never a silent overwrite of another row.

Columns excluded from the mapping (``tables[].exclude``) are not written: an update keeps
their MySQL value, an insert gives them their default.

Values: :func:`sql_value` is :func:`~replicator.mapping.pytypes.to_python` (what PyMySQL
gives for the column, JSON as text) except FLOAT, which goes as the exact single-precision
value the item holds, not as the 6-digit text PyMySQL shows.

Fit: the sink runs MySQL in strict mode, where a value out of range, too long, not a member
of its ENUM/SET, an invalid date or text a column's charset cannot hold is an error (a dead
letter). Some values MySQL changes without an error even then -- it rounds a DECIMAL's extra
fractional digits and a DATETIME/TIMESTAMP/TIME's extra fractional seconds, reads a 2-digit
YEAR as 20xx, strips a CHAR's trailing spaces -- so the columns of those types
(:attr:`TablePlan.fit_columns`) are checked first with
:func:`~replicator.mapping.check_row_fits`, the rule the phase-5 client applies before writing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from replicator.events import Row, Value
from replicator.mapping import TableMapper
from replicator.mapping.cells import quote_ident
from replicator.mapping.coltypes import ColumnType
from replicator.mapping.pytypes import to_python
from replicator.mapping.values import decode_value

#: Column kinds whose values MySQL may change without an error in strict mode (module docstring).
SILENTLY_CHANGED = frozenset(("decimal", "datetime", "timestamp", "time", "year"))
_FIXED_CHARS = frozenset(("char", "nchar"))


def sql_value(ct: ColumnType, value: Value) -> Any:
    """One event-model value as the parameter MySQL stores exactly."""
    if value is None:
        return None
    if ct.kind == "float":
        return float(value)  # type: ignore[arg-type]  # the mapping gives FLOAT columns a float
    return to_python(ct, value, "text")


class TablePlan:
    """One MySQL table as the reverse replication writes it (see the module docstring)."""

    def __init__(self, mapper: TableMapper, *, unique_keys: Collection[tuple[str, ...]] = (),
                 not_null: Collection[str] = ()) -> None:
        self.mapper = mapper
        self.source = mapper.table
        self.columns: tuple[str, ...] = tuple(mapper.attributes)
        self.pk: tuple[str, ...] = mapper.primary_key
        self.unique_keys = tuple(tuple(k) for k in unique_keys)
        self.not_null = frozenset(not_null)
        self._types = [mapper.types[c] for c in self.columns]
        self._decode = [(c, a, mapper.types[c], mapper.override(c)) for c, a in mapper.attributes.items()]
        #: The columns checked against their MySQL type before writing (module docstring).
        self.fit_columns = tuple(c for c in self.columns if mapper.types[c].kind in SILENTLY_CHANGED
                                 or mapper.types[c].base in _FIXED_CHARS)
        self._pk_index = [self.columns.index(c) for c in self.pk if c in self.columns]
        db, table = self.source.split(".")
        self.qualified = f"{quote_ident(db)}.{quote_ident(table)}"
        cols = ", ".join(quote_ident(c) for c in self.columns)
        marks = ", ".join(["%s"] * len(self.columns))
        others = [c for c in self.columns if c not in self.pk] or list(self.pk[:1])
        updates = ", ".join(f"{quote_ident(c)} = VALUES({quote_ident(c)})" for c in others)
        self.insert_sql = f"INSERT INTO {self.qualified} ({cols}) VALUES ({marks})"  # noqa: S608
        self.upsert_sql = f"{self.insert_sql} ON DUPLICATE KEY UPDATE {updates}"
        where = " AND ".join(f"{quote_ident(c)} = %s" for c in self.pk)
        sets = ", ".join(f"{quote_ident(c)} = %s" for c in others)
        self.update_sql = f"UPDATE {self.qualified} SET {sets} WHERE {where}"  # noqa: S608
        self.delete_sql = f"DELETE FROM {self.qualified} WHERE {where}"  # noqa: S608
        self._update_index = [self.columns.index(c) for c in others]

    @property
    def has_unique_keys(self) -> bool:
        """Unique keys besides the primary key: upserts go by update-or-insert (module docstring)."""
        return bool(self.unique_keys)

    def missing_key_columns(self) -> list[str]:
        """Primary-key columns the mapping does not carry (excluded): such a table cannot be written."""
        return [c for c in self.pk if c not in self.columns]

    def read_item(self, item: dict[str, Any]) -> tuple[Row, tuple[Any, ...]]:
        """:meth:`TableMapper.to_row` and :meth:`row_params` in one pass over the columns."""
        row: Row = {}
        params = []
        for column, attr, ct, override in self._decode:
            value = decode_value(ct, override, item.get(attr))
            row[column] = value
            params.append(sql_value(ct, value))
        return row, tuple(params)

    def row_params(self, row: Row) -> tuple[Any, ...]:
        """The upsert's parameters: every mapped column, in column order."""
        return tuple(sql_value(ct, row.get(c)) for c, ct in zip(self.columns, self._types, strict=True))

    def pk_of(self, params: Sequence[Any]) -> tuple[Any, ...]:
        """The primary-key values among an upsert's parameters."""
        return tuple(params[i] for i in self._pk_index)

    def pk_params(self, row: Row) -> tuple[Any, ...]:
        """The primary-key values of a row (event model) as parameters."""
        return tuple(sql_value(self.mapper.types[c], row.get(c)) for c in self.pk)

    def update_params(self, params: Sequence[Any]) -> tuple[Any, ...]:
        """``update_sql``'s parameters from an upsert's: the other columns, then the key."""
        return tuple(params[i] for i in self._update_index) + self.pk_of(params)

    def existing_sql(self, count: int) -> str:
        """Which of ``count`` primary keys exist, locked for the transaction."""
        cols = ", ".join(quote_ident(c) for c in self.pk)
        one = "(" + ", ".join(["%s"] * len(self.pk)) + ")"
        lhs = f"({cols})" if len(self.pk) > 1 else cols
        rhs = ", ".join([one if len(self.pk) > 1 else "%s"] * count)
        return f"SELECT {cols} FROM {self.qualified} WHERE {lhs} IN ({rhs}) FOR UPDATE"  # noqa: S608

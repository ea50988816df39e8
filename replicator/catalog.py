"""What ``information_schema`` says about a mapped table today: columns, keys, JSON columns.

One reader for every component that needs a table's *current* shape: the writer (to check the
mapping and create DynamoDB tables at start-up), the backfill and the reconciliation (which read
current rows). The binlog reader does not use it to decode rows: it decodes each row with the
schema the binlog's own metadata describes at that point of the stream.

Works with the reader's grants (SELECT). Primary keys come from ``STATISTICS``, which MariaDB
shows to a SELECT-only user (it hides ``TABLE_CONSTRAINTS``). MariaDB stores JSON as LONGTEXT
with a ``json_valid(`col`)`` CHECK constraint: such a column is reported as ``json``, the way
MySQL's COLUMN_TYPE already spells it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from replicator.adapters.mysql import mysql_errors
from replicator.errors import StatementRejected
from replicator.mapping.coltypes import ColumnType, parse_column_type

_COLUMNS = ("SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION")
_PRIMARY = ("SELECT COLUMN_NAME FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX")
_UNIQUE = ("SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
           "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY' "
           "ORDER BY INDEX_NAME, SEQ_IN_INDEX")
_CHECKS = ("SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
           "WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s")
_JSON_CHECK = re.compile(r"json_valid\(`((?:[^`]|``)+)`\)", re.IGNORECASE)


@dataclass(frozen=True)
class TableShape:
    db: str
    table: str
    columns: tuple[tuple[str, str], ...]  # (name, COLUMN_TYPE) as change events carry them
    pk: tuple[str, ...]  # primary-key columns in index order; () when the table has none
    unique: tuple[tuple[str, ...], ...] = ()  # the other unique indexes' columns, in index order
    types: tuple[ColumnType, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "types", tuple(parse_column_type(t) for _, t in self.columns))

    @property
    def source(self) -> str:
        return f"{self.db}.{self.table}"


def json_columns(check_clauses: list[str]) -> set[str]:
    """Columns that a ``json_valid(`col`)`` CHECK constraint marks as JSON (pure)."""
    found: set[str] = set()
    for clause in check_clauses:
        m = _JSON_CHECK.fullmatch(clause.strip())
        if m:
            found.add(m.group(1).replace("``", "`"))
    return found


def read_table_shape(cur: Any, db: str, table: str) -> TableShape | None:
    """The table's current shape through an open cursor; None when there is no such table."""
    cur.execute(_COLUMNS, (db, table))
    cols = [(str(n), str(t)) for n, t in cur.fetchall()]
    if not cols:
        return None
    cur.execute(_PRIMARY, (db, table))
    pk = tuple(str(r[0]) for r in cur.fetchall())
    cur.execute(_UNIQUE, (db, table))
    unique: dict[str, list[str]] = {}
    for index, column in cur.fetchall():
        unique.setdefault(str(index), []).append(str(column))
    try:
        with mysql_errors("reading CHECK constraints"):
            cur.execute(_CHECKS, (db, table))
            is_json = json_columns([str(r[0]) for r in cur.fetchall()])
    except StatementRejected:  # MySQL before 8.0.16 has no CHECK_CONSTRAINTS (and native JSON)
        is_json = set()
    return TableShape(db, table, tuple((n, "json" if n in is_json else t) for n, t in cols), pk,
                      tuple(tuple(c) for c in unique.values()))

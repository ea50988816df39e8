"""Start-up check of the mapping config against MySQL's ``information_schema``.

The writer needs the mapped tables' columns before the first event arrives: to refuse a config
whose key templates name unknown columns (exit 2) and to create missing DynamoDB tables with
the mapping's key schema. The reader's grants (SELECT) are enough.
"""

from __future__ import annotations

from typing import Any

from replicator.adapters.mysql import connect, mysql_errors
from replicator.catalog import read_table_shape
from replicator.errors import ConfigError
from replicator.settings import Settings

TableSchema = tuple[tuple[tuple[str, str], ...], tuple[str, ...]]  # (columns, primary key)


def load_schemas(settings: Settings) -> dict[str, TableSchema]:
    """Columns and primary key of every mapped table, by ``database.table``."""
    conn = connect(settings.mysql)
    try:
        with mysql_errors("reading the mapped tables' columns from information_schema", settings.mysql), \
                conn.cursor() as cur:
            return {t.source: _one(cur, t.database, t.table) for t in settings.tables}
    finally:
        conn.close()


def _one(cur: Any, database: str, table: str) -> TableSchema:
    shape = read_table_shape(cur, database, table)
    if shape is None:
        raise ConfigError(f"tables[source={database}.{table}]: no such table in MySQL "
                          f"(or no SELECT grant on it)")
    return shape.columns, shape.pk

"""Start-up check of the mapping config against MySQL's ``information_schema``.

The writer needs the mapped tables' columns before the first event arrives: to refuse a config
whose key templates name unknown columns or cover no unique index (exit 2) and to create
missing DynamoDB tables with the mapping's key schema. The reader's grants (SELECT) are enough.
"""

from __future__ import annotations

from typing import Any

from replicator.adapters.mysql import connect, mysql_errors
from replicator.catalog import read_table_shape
from replicator.errors import ConfigError
from replicator.mapping.uniqueness import check_key_is_unique, key_columns
from replicator.settings import Settings, TableMapping

TableSchema = tuple[tuple[tuple[str, str], ...], tuple[str, ...]]  # (columns, primary key)


def load_schemas(settings: Settings) -> dict[str, TableSchema]:
    """Columns and primary key of every mapped table, by ``database.table``."""
    conn = connect(settings.mysql)
    try:
        with mysql_errors("reading the mapped tables' columns from information_schema", settings.mysql), \
                conn.cursor() as cur:
            return {t.source: _one(cur, t) for t in settings.tables}
    finally:
        conn.close()


def _one(cur: Any, mapping: TableMapping) -> TableSchema:
    shape = read_table_shape(cur, mapping.database, mapping.table)
    if shape is None:
        raise ConfigError(f"tables[source={mapping.source}]: no such table in MySQL "
                          f"(or no SELECT grant on it)")
    if key_columns(mapping, shape.pk) <= {name for name, _ in shape.columns}:  # else validate() names them
        check_key_is_unique(mapping, shape.pk, shape.unique)  # never two rows on one item
    return shape.columns, shape.pk

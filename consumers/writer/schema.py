"""Start-up check of the mapping config against MySQL's ``information_schema``.

The writer needs the mapped tables' columns before the first event arrives: to refuse a config
whose key templates name unknown columns (exit 2) and to create missing DynamoDB tables with
the mapping's key schema. The reader's grants (SELECT) are enough.
"""

from __future__ import annotations

from typing import Any

import pymysql

from replicator.catalog import read_table_shape
from replicator.errors import ConfigError, SourceUnavailable
from replicator.settings import Settings

TableSchema = tuple[tuple[tuple[str, str], ...], tuple[str, ...]]  # (columns, primary key)


def load_schemas(settings: Settings) -> dict[str, TableSchema]:
    """Columns and primary key of every mapped table, by ``database.table``."""
    m = settings.mysql
    try:
        conn = pymysql.connect(host=m.host, port=m.port, user=m.user, password=m.password.get_secret_value(),
                               connect_timeout=int(m.connect_timeout_s), charset="utf8mb4")
    except pymysql.err.OperationalError as exc:
        raise SourceUnavailable(f"MySQL at {m.host}:{m.port}: {exc.args[-1]} (the writer reads the mapped "
                                f"tables' columns from information_schema at start-up)") from exc
    try:
        with conn.cursor() as cur:
            return {t.source: _one(cur, t.database, t.table) for t in settings.tables}
    finally:
        conn.close()


def _one(cur: Any, database: str, table: str) -> TableSchema:
    shape = read_table_shape(cur, database, table)
    if shape is None:
        raise ConfigError(f"tables[source={database}.{table}]: no such table in MySQL "
                          f"(or no SELECT grant on it)")
    return shape.columns, shape.pk

"""Start-up check of the mapping config against MySQL's ``information_schema``.

The writer needs the mapped tables' columns before the first event arrives: to refuse a config
whose key templates name unknown columns (exit 2) and to create missing DynamoDB tables with
the mapping's key schema. The reader's grants (SELECT) are enough.
"""

from __future__ import annotations

from typing import Any

import pymysql

from replicator.errors import ConfigError, SourceUnavailable
from replicator.settings import Settings

TableSchema = tuple[tuple[tuple[str, str], ...], tuple[str, ...]]  # (columns, primary key)

_COLUMNS = ("SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION")
_PRIMARY = ("SELECT COLUMN_NAME FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX")
# MariaDB stores JSON as LONGTEXT with a json_valid() check: recognise the column from it.
_JSON_CHECKS = ("SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                "WHERE CONSTRAINT_SCHEMA = %s AND TABLE_NAME = %s")


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
    cur.execute(_COLUMNS, (database, table))
    columns = [(str(n), str(t)) for n, t in cur.fetchall()]
    if not columns:
        raise ConfigError(f"tables[source={database}.{table}]: no such table in MySQL "
                          f"(or no SELECT grant on it)")
    cur.execute(_PRIMARY, (database, table))
    primary = tuple(str(r[0]) for r in cur.fetchall())
    try:
        cur.execute(_JSON_CHECKS, (database, table))
        clauses = " ".join(str(r[0]) for r in cur.fetchall()).lower()
    except pymysql.err.MySQLError:  # MySQL 8 has native JSON and no such view column
        clauses = ""
    columns = [(n, "json" if f"json_valid(`{n.lower()}`)" in clauses else t) for n, t in columns]
    return tuple(columns), primary

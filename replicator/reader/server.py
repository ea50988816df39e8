"""The source server's metadata over an ordinary SQL connection: the I/O half of the start-up
checks (:mod:`.checks`), the start position, and the catalog the binlog decoder needs
(collations, MariaDB JSON columns), and the fence row a fresh start begins with.

Connections come from :func:`replicator.adapters.mysql.connect`, and PyMySQL's exceptions are
translated by :func:`replicator.adapters.mysql.mysql_errors`: a server that does not answer is
:class:`~replicator.errors.SourceUnavailable` (retried by the reader), refused access a
:class:`~replicator.errors.ConfigError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from replicator.adapters.mysql import connect, mysql_errors
from replicator.errors import SourceConfigError, StatementRejected
from replicator.fence import INITIAL_FENCE, FenceState, quoted_table, read_fence
from replicator.reader import checks
from replicator.reader.schema import Catalog
from replicator.settings import MySQLSettings

__all__ = ["ServerInfo"]

_NO_SUCH_TABLE = 1146
_NO_TABLE_PRIVILEGE = frozenset((1142, 1143))  # SELECT (table / column) command denied


class ServerInfo:
    """Reads what the checks and the catalog need; one short-lived connection per use."""

    def __init__(self, cfg: MySQLSettings) -> None:
        self._cfg = cfg

    @contextmanager
    def _cursor(self, what: str) -> Iterator[Any]:
        conn = connect(self._cfg, read_timeout_s=30.0)
        try:
            with mysql_errors(what, self._cfg), conn.cursor() as cur:
                yield cur
        finally:
            conn.close()

    def version(self) -> str:
        with self._cursor("reading the version") as cur:
            cur.execute("SELECT VERSION()")
            return str(cur.fetchone()[0])

    def binlog_variables(self) -> dict[str, str]:
        with self._cursor("reading binlog settings") as cur:
            cur.execute("SHOW GLOBAL VARIABLES WHERE Variable_name IN "
                        "('log_bin','binlog_format','binlog_row_image','binlog_row_metadata')")
            return {str(k): str(v) for k, v in cur.fetchall()}

    def grants(self) -> list[str]:
        with self._cursor("reading grants") as cur:
            cur.execute("SHOW GRANTS")
            return [str(r[0]) for r in cur.fetchall()]

    def binlog_files(self) -> list[str]:
        with self._cursor("listing binlogs") as cur:
            cur.execute("SHOW BINARY LOGS")
            return [str(r[0]) for r in cur.fetchall()]

    def head(self) -> tuple[str, int]:
        with self._cursor("reading the binlog head") as cur:
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
            if not row:
                raise SourceConfigError("SHOW MASTER STATUS is empty: the server writes no binlog (log_bin)")
            return str(row[0]), int(row[1])

    def tables(self, mapped: set[str]) -> tuple[set[str], set[str]]:
        """(existing mapped tables, those with a primary key)."""
        dbs = sorted({m.split(".")[0] for m in mapped}) or [""]
        marks = ",".join(["%s"] * len(dbs))
        with self._cursor("reading tables") as cur:
            cur.execute(f"SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "  # noqa: S608 - placeholders only
                        f"WHERE TABLE_SCHEMA IN ({marks})", dbs)
            existing = {f"{d}.{t}" for d, t in cur.fetchall()} & mapped
            # STATISTICS, not TABLE_CONSTRAINTS: MariaDB hides the latter from a SELECT-only user.
            cur.execute(f"SELECT DISTINCT TABLE_SCHEMA, TABLE_NAME FROM information_schema.STATISTICS "  # noqa: S608
                        f"WHERE INDEX_NAME='PRIMARY' AND TABLE_SCHEMA IN ({marks})", dbs)
            with_pk = {f"{d}.{t}" for d, t in cur.fetchall()} & mapped
        return existing, with_pk

    def foreign_keys(self, mapped: set[str]) -> list[tuple[str, str, str, str, str, str]]:
        """The foreign keys of the existing mapped tables, from SHOW CREATE TABLE."""
        existing, _ = self.tables(mapped)
        out: list[tuple[str, str, str, str, str, str]] = []
        with self._cursor("reading foreign keys") as cur:
            for source in sorted(existing):
                db, table = source.split(".")
                cur.execute(f"SHOW CREATE TABLE {quoted_table(source)}")
                out += checks.foreign_keys_of(db, table, str(cur.fetchone()[1]))
        return out

    def fence(self, table: str) -> FenceState:
        """The fence row now (:data:`~replicator.fence.INITIAL_FENCE` when the table does not exist).

        A table this user may not read is an error, not a missing table: probed with a SELECT
        first, since ``information_schema`` hides such a table.
        """
        try:
            with self._cursor("probing the fence table") as cur:
                cur.execute(f"SELECT 1 FROM {quoted_table(table)} LIMIT 0")  # noqa: S608 - quoted name
                cur.fetchall()
        except StatementRejected as exc:
            if exc.code == _NO_SUCH_TABLE:
                return INITIAL_FENCE
            if exc.code in _NO_TABLE_PRIVILEGE:
                raise SourceConfigError(
                    f"MySQL user {self._cfg.user!r} cannot read the fence table {table} "
                    f"(cutover.fence_table): {exc}. A fresh start reads the write target's generation "
                    f"from it: GRANT SELECT ON {quoted_table(table)} TO '{self._cfg.user}'@'<host>' "
                    "(or SELECT on its database) as an administrator"
                ) from exc
            raise
        with self._cursor("reading the fence row") as cur:
            return read_fence(cur, table)

    def catalog(self, mapped: set[str]) -> Catalog:
        version = self.version()
        dbs = sorted({m.split(".")[0] for m in mapped}) or [""]
        marks = ",".join(["%s"] * len(dbs))
        with self._cursor("reading the catalog") as cur:
            cur.execute("SELECT c.ID, c.CHARACTER_SET_NAME, s.MAXLEN FROM information_schema.COLLATIONS c "
                        "JOIN information_schema.CHARACTER_SETS s "
                        "ON s.CHARACTER_SET_NAME = c.CHARACTER_SET_NAME "
                        "WHERE c.ID IS NOT NULL")
            collations = {int(i): (str(cs), int(n)) for i, cs, n in cur.fetchall()}
            json_cols: dict[str, frozenset[str]] = {}
            text_types: dict[str, dict[str, str]] = {}
            if "mariadb" in version.lower():
                cur.execute("SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE "  # noqa: S608
                            "FROM information_schema.CHECK_CONSTRAINTS "
                            f"WHERE CONSTRAINT_SCHEMA IN ({marks})", dbs)
                json_cols = checks.json_columns((str(a), str(b), str(c)) for a, b, c in cur.fetchall())
                cur.execute("SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE "  # noqa: S608
                            "FROM information_schema.COLUMNS WHERE DATA_TYPE IN ('uuid', 'inet4', 'inet6') "
                            f"AND TABLE_SCHEMA IN ({marks})", dbs)
                for db, table, column, data_type in cur.fetchall():
                    text_types.setdefault(f"{db}.{table}", {})[str(column)] = str(data_type).lower()
        return Catalog(collations, json_cols, checks.display_widths(version), "mariadb" in version.lower(),
                       text_types)

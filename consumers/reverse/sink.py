"""The MySQL side: table shapes at start-up, and each page of changes applied in one transaction.

The connection comes from :func:`replicator.adapters.mysql.connect` with the application's
MySQL user (``client.mysql_user``, falling back to ``mysql.user``: the writes are the
application's). The session runs in UTC (TIMESTAMP values are UTC in DynamoDB) with a strict
``sql_mode``: a value MySQL cannot hold is an error (a dead letter), never truncated or
rounded in silence; ``NO_AUTO_VALUE_ON_ZERO`` keeps a primary key of 0 as 0.

The rows of the tables whose rows can move between items (a DynamoDB key over other columns than
the primary key, embedded children: :attr:`MySQLSink.versioned`) have their last applied version
kept in a table of their own (``cutover.reverse_versions_table``, ``replicator.reverse_versions``
by default; created at start-up): in the page's transaction the versions of its rows are read
``FOR UPDATE``, a change not newer than its row's is superseded (:mod:`.order`: the halves of a
moved row reach the reverse in any order), and the new versions are written with the rows, so
they commit or roll back together. A row that is always one item needs none of it: its records
are one item's, in stream order.

One page is one transaction. Fast path: consecutive changes of one table and kind go as one
``executemany`` (one multi-row statement for upserts), in stream order. If MySQL refuses any
statement, the transaction is rolled back and the page is applied again change by change in
one transaction, each refusal judged on its own (InnoDB rolls back only the refused
statement): a duplicate key or a foreign key waiting on a row another shard has not applied
yet is worth another try (``retry``); anything else is ``rejected`` for good (a dead letter).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby
from typing import Any

import structlog

from consumers.reverse.model import APPLIED, SUPERSEDED, Change, Outcome
from consumers.reverse.order import Stamp, newer, row_digest, stamp
from consumers.reverse.plan import TablePlan
from replicator.adapters.mysql import Connection, connect, mysql_errors
from replicator.catalog import TableShape, read_table_shape
from replicator.errors import ConfigError, ReplicatorError, SourceUnavailable, StatementRejected
from replicator.mapping.cells import quote_ident
from replicator.settings import MySQLSettings

log = structlog.get_logger("consumers.reverse")

SQL_MODE = "STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION"
#: MySQL refusals that another shard's change may resolve: retried, then dead-lettered.
RETRY_CODES = {1062: "duplicate_key", 1451: "foreign_key", 1452: "foreign_key"}
REASONS = {
    1406: "too_long", 1264: "out_of_range", 1366: "incorrect_value", 1292: "incorrect_value",
    1048: "null_in_not_null", 1364: "no_default", 1265: "truncated", 1054: "unknown_column",
    4025: "check_constraint", 3819: "check_constraint", 1690: "out_of_range",
}
_UNIQUE = ("SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s "
           "AND TABLE_NAME = %s AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY' "
           "ORDER BY INDEX_NAME, SEQ_IN_INDEX")
_NOT_NULL = ("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s "
             "AND IS_NULLABLE = 'NO'")


class TableFacts:
    """What the reverse replication reads about one MySQL table at start-up."""

    def __init__(self, shape: TableShape, unique_keys: list[tuple[str, ...]], not_null: set[str]) -> None:
        self.shape = shape
        self.unique_keys = unique_keys
        self.not_null = not_null


def versions_ddl(table: str) -> list[str]:
    """The statements that create the versions table ``database.table`` (idempotent)."""
    db, name = table.split(".", 1)
    return [f"CREATE DATABASE IF NOT EXISTS {quote_ident(db)}",
            f"CREATE TABLE IF NOT EXISTS {quote_ident(db)}.{quote_ident(name)} ("
            "row_digest BINARY(32) NOT NULL PRIMARY KEY COMMENT 'SHA-256 of the table and primary key', "
            "source_table VARCHAR(200) NOT NULL, "
            "version BIGINT UNSIGNED NOT NULL, "
            "op_rank TINYINT NOT NULL COMMENT '0 delete, 1 upsert: at one version an upsert wins', "
            "applied_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)"
            ") ENGINE=InnoDB COMMENT 'replicator reverse: the last version applied to each row'"]


class MySQLSink:
    """:class:`~consumers.reverse.ports.RowSink` over one PyMySQL connection (see module docstring)."""

    def __init__(self, cfg: MySQLSettings, plans: dict[str, TablePlan] | None = None, *,
                 versions_table: str = "replicator.reverse_versions") -> None:
        self.cfg = cfg
        self.plans: dict[str, TablePlan] = dict(plans or {})
        self._conn: Connection[Any] | None = None
        db, name = versions_table.split(".", 1)
        self.versions_table = versions_table
        self._versions = f"{quote_ident(db)}.{quote_ident(name)}"
        #: The sources whose rows can move between items: their changes are ordered by version.
        self.versioned: set[str] = set()

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._connection()

    def create_versions_table(self) -> None:
        """Create the versions table (idempotent): at start-up, when :attr:`versioned` is not empty."""
        conn = self._connection()
        try:
            with mysql_errors(f"creating the versions table {self.versions_table}", self.cfg), \
                    conn.cursor() as cur:
                for ddl in versions_ddl(self.versions_table):
                    cur.execute(ddl)
        except StatementRejected as exc:
            statements = ";\n  ".join(versions_ddl(self.versions_table))
            raise ConfigError(
                f"reverse replication keeps each row's last applied version in {self.versions_table}, and "
                f"MySQL refused to create it for user {self.cfg.user}: {exc}. Create it once as an "
                f"administrator and grant that user SELECT, INSERT, UPDATE, DELETE on it:\n  "
                f"{statements}") from exc

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                with mysql_errors("closing the connection"):
                    conn.close()
            except ReplicatorError:
                pass  # already gone: nothing left to release

    def _connection(self) -> Connection[Any]:
        if self._conn is None:
            conn = connect(self.cfg, utc=True, autocommit=False)
            try:
                with mysql_errors("setting up the session", self.cfg), conn.cursor() as cur:
                    cur.execute(f"SET SESSION sql_mode = '{SQL_MODE}'")
            except ReplicatorError:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def facts(self, source: str) -> TableFacts:
        """Columns, primary key, unique keys and NOT NULL columns of ``database.table``."""
        db, table = source.split(".")
        conn = self._connection()
        with mysql_errors(f"reading the shape of {source}", self.cfg):
            with conn.cursor() as cur:
                shape = read_table_shape(cur, db, table)
                cur.execute(_UNIQUE, (db, table))
                unique = [tuple(str(c) for _, c in cols)
                          for _, cols in groupby(cur.fetchall(), key=lambda r: r[0])]
                cur.execute(_NOT_NULL, (db, table))
                not_null = {str(r[0]) for r in cur.fetchall()}
            conn.rollback()  # end the read snapshot
        if shape is None:
            raise ConfigError(f"tables[source={source}]: no such table in MySQL, or the application's "
                              f"MySQL user ({self.cfg.user}) cannot see it; reverse replication writes "
                              f"with that user (client.mysql_user)")
        return TableFacts(shape, unique, not_null)

    #: Rows deleted per statement, and statements per call, by :meth:`prune_versions`.
    PRUNE_BATCH = 5000
    PRUNE_BATCHES = 20

    def prune_versions(self, older_than_s: float) -> int:
        """Delete the versions of rows not written for ``older_than_s`` (in batches, each its own
        short transaction, at most :attr:`PRUNE_BATCHES` of them: the rest waits for the next
        call). Safe because DynamoDB Streams keep a record 24 h and a shard trimmed before it was
        read stops the reverse (``cutover.reverse_versions_retention_s``, at least 25 h): no
        record older than a pruned version can still be applied."""
        if not self.versioned:
            return 0
        conn = self._connection()
        total = 0
        try:
            for _ in range(self.PRUNE_BATCHES):
                with mysql_errors(f"deleting old row versions from {self.versions_table}", self.cfg), \
                        conn.cursor() as cur:
                    n = int(cur.execute(
                        f"DELETE FROM {self._versions} WHERE applied_at < "  # noqa: S608
                        "UTC_TIMESTAMP(3) - INTERVAL %s SECOND LIMIT %s",
                        (int(older_than_s), self.PRUNE_BATCH)))
                with mysql_errors("committing"):
                    conn.commit()
                total += n
                if n < self.PRUNE_BATCH:
                    break
        except ReplicatorError:
            self._rollback(conn)
            raise
        return total

    # ----------------------------------------------------------------- apply

    def apply(self, changes: Sequence[Change]) -> list[Outcome]:
        if not changes:
            return []
        conn = self._connection()
        try:
            try:
                with conn.cursor() as cur:
                    tracked = [c for c in changes if c.source in self.versioned]
                    newest, final = newer(tracked, self._stored(cur, tracked))
                    verdicts = iter(newest)
                    applies = [next(verdicts) if c.source in self.versioned else True for c in changes]
                    todo = [c for c, a in zip(changes, applies, strict=True) if a]
                    for (source, op), run in groupby(todo, key=lambda c: (c.source, c.op)):
                        self._run(cur, self.plans[source], op, list(run))
                    self._record(cur, final, {row_digest(c.source, c.pk): c.source for c in todo
                                              if c.source in self.versioned})
                with mysql_errors("committing"):
                    conn.commit()
                return [APPLIED if a else SUPERSEDED for a in applies]
            except StatementRejected:
                self._rollback(conn)
            outcomes = self._one_by_one(conn, changes)
            with mysql_errors("committing"):
                conn.commit()
            return outcomes
        except SourceUnavailable:
            self._rollback(conn)
            self.close()  # the connection may be broken: a new one next time
            raise

    def _rollback(self, conn: Connection[Any]) -> None:
        try:
            with mysql_errors("rolling back"):
                conn.rollback()
        except SourceUnavailable:
            self.close()
            raise

    def _run(self, cur: Any, plan: TablePlan, op: str, run: list[Change]) -> None:
        with mysql_errors(f"writing {len(run)} row(s) of {plan.source}", self.cfg):
            if op == "delete":
                cur.executemany(plan.delete_sql, [c.params for c in run])
            elif not plan.has_unique_keys:
                cur.executemany(plan.upsert_sql, [c.params for c in run])
            else:
                keys = [c.pk for c in run]
                cur.execute(plan.existing_sql(len(keys)), [v for k in keys for v in k])
                existing = {tuple(r) for r in cur.fetchall()}
                updates = [plan.update_params(c.params) for c in run if c.pk in existing]
                inserts = [c.params for c in run if c.pk not in existing]
                if updates:
                    cur.executemany(plan.update_sql, updates)
                if inserts:
                    cur.executemany(plan.insert_sql, inserts)

    def _stored(self, cur: Any, changes: Sequence[Change]) -> dict[bytes, Stamp]:
        """The versions of the page's rows, locked until the transaction ends."""
        digests = sorted({row_digest(c.source, c.pk) for c in changes})
        if not digests:
            return {}
        marks = ", ".join(["%s"] * len(digests))
        with mysql_errors(f"reading {len(digests)} row version(s) from {self.versions_table}", self.cfg):
            cur.execute(f"SELECT row_digest, version, op_rank FROM {self._versions} "  # noqa: S608
                        f"WHERE row_digest IN ({marks}) FOR UPDATE", digests)
            return {bytes(d): (int(v), int(r)) for d, v, r in cur.fetchall()}

    def _record(self, cur: Any, stamps: dict[bytes, Stamp], sources: dict[bytes, str]) -> None:
        """Write the rows' new versions (only ever raised: :func:`.order.newer` compared them)."""
        rows = [(d, sources[d], v, r) for d, (v, r) in stamps.items() if d in sources]
        if not rows:
            return
        with mysql_errors(f"writing {len(rows)} row version(s) to {self.versions_table}", self.cfg):
            cur.executemany(f"INSERT INTO {self._versions} (row_digest, source_table, version, op_rank) "  # noqa: S608
                            "VALUES (%s, %s, %s, %s) ON DUPLICATE KEY UPDATE version = VALUES(version), "
                            "op_rank = VALUES(op_rank)", rows)

    def _one_by_one(self, conn: Connection[Any], changes: Sequence[Change]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        with conn.cursor() as cur:
            current = self._stored(cur, [c for c in changes if c.source in self.versioned])
            applied: dict[bytes, str] = {}
            for c in changes:
                versioned = c.source in self.versioned
                digest = row_digest(c.source, c.pk) if versioned else b""
                was = current.get(digest) if versioned else None
                if was is not None and stamp(c) <= was:
                    outcomes.append(SUPERSEDED)
                    continue
                try:
                    self._run(cur, self.plans[c.source], c.op, [c])
                    outcomes.append(APPLIED)
                    if versioned:
                        current[digest] = stamp(c)
                        applied[digest] = c.source
                except StatementRejected as exc:
                    if exc.code in RETRY_CODES:
                        outcomes.append(Outcome("retry", RETRY_CODES[exc.code], str(exc)))
                    else:
                        outcomes.append(Outcome("rejected", REASONS.get(exc.code, f"mysql_{exc.code}"),
                                                str(exc)))
            self._record(cur, current, applied)
        return outcomes

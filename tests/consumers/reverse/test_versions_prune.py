"""The reverse's row versions are deleted once older than the stream can still carry a record
of (``cutover.reverse_versions_retention_s``), on real MariaDB: old rows go in batches, recent
ones stay, and a MySQL user without DELETE is refused (the runner then turns pruning off)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from pydantic import SecretStr

from consumers.reverse.sink import MySQLSink
from replicator.errors import StatementRejected
from replicator.settings import load_settings

pytestmark = pytest.mark.integration

DAY = 86_400


def _sink(stack_env: dict[str, str], db: str, user: str | None = None) -> MySQLSink:
    settings = load_settings()
    cfg = settings.mysql_as(user or stack_env.get("STACK_MYSQL_ADMIN_USER", "admin"),
                            SecretStr(stack_env.get("STACK_MYSQL_ADMIN_PASSWORD", "") if user is None
                                      else stack_env["REPLICATOR_MYSQL__PASSWORD"]))
    sink = MySQLSink(cfg, versions_table=f"{db}.versions")
    sink.versioned.add(f"{db}.orders")
    return sink


def _rows(mysql_admin: Any, db: str, ages_s: list[int]) -> None:
    with mysql_admin.cursor() as cur:
        cur.executemany(
            f"INSERT INTO `{db}`.versions (row_digest, source_table, version, op_rank, applied_at) "
            "VALUES (%s, %s, %s, 1, UTC_TIMESTAMP(3) - INTERVAL %s SECOND)",
            [(hashlib.sha256(str(i).encode()).digest(), f"{db}.orders", 1000 + i, age)
             for i, age in enumerate(ages_s)])


def _ages(mysql_admin: Any, db: str) -> list[int]:
    with mysql_admin.cursor() as cur:
        cur.execute(f"SELECT TIMESTAMPDIFF(SECOND, applied_at, UTC_TIMESTAMP(3)) FROM `{db}`.versions")
        return sorted(int(r[0]) for r in cur.fetchall())


def test_versions_older_than_the_retention_are_deleted_in_batches_and_recent_ones_stay(
        stack_env: dict[str, str], mysql_db: str, mysql_admin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    sink = _sink(stack_env, mysql_db)
    sink.create_versions_table()
    _rows(mysql_admin, mysql_db, [3 * DAY] * 7 + [2 * DAY + 600, 3600, 60, 0])
    monkeypatch.setattr(MySQLSink, "PRUNE_BATCH", 3)
    monkeypatch.setattr(MySQLSink, "PRUNE_BATCHES", 2)
    try:
        assert sink.prune_versions(2 * DAY) == 6  # two batches of 3: the rest waits for the next call
        assert sink.prune_versions(2 * DAY) == 2
        assert sink.prune_versions(2 * DAY) == 0
    finally:
        sink.close()
    assert [a // 60 for a in _ages(mysql_admin, mysql_db)] == [0, 1, 60]


def test_a_user_without_delete_on_the_versions_table_is_refused(stack_env: dict[str, str], mysql_db: str,
                                                                mysql_admin: Any) -> None:
    admin = _sink(stack_env, mysql_db)
    admin.create_versions_table()
    admin.close()
    user = f"{mysql_db}_v"
    with mysql_admin.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (stack_env["REPLICATOR_MYSQL__PASSWORD"],))
        cur.execute(f"GRANT SELECT, INSERT, UPDATE ON `{mysql_db}`.versions TO '{user}'@'%'")
    sink = _sink(stack_env, mysql_db, user=user)
    try:
        with pytest.raises(StatementRejected):
            sink.prune_versions(2 * DAY)
    finally:
        sink.close()
        with mysql_admin.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")

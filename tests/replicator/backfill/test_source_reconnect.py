"""The snapshot reader after a lost connection (a MariaDB restart, a killed session): the read that
lost it fails as unavailable (the backfill retries it), the next one connects again and succeeds.
Before, every later read failed with ``(0, '')`` and the backfill retried forever (seed 20261180
of the fault campaign, a MariaDB restart while the backfill copied)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from replicator.backfill.source import SnapshotSource
from replicator.errors import SourceUnavailable
from replicator.settings import Settings

pytestmark = pytest.mark.integration


def test_a_chunk_read_after_the_connection_was_killed_connects_again(
        mysql_admin: Any, mysql_db: str, settings: Settings) -> None:
    user = f"{mysql_db}_r"[-32:]  # a user of its own: its sessions are the reader's alone
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, v INT)")
        cur.executemany("INSERT INTO items VALUES (%s, %s)", [(i, i) for i in range(1, 11)])
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY 'pw'", (user,))
        cur.execute(f"GRANT SELECT ON `{mysql_db}`.* TO %s@'%%'", (user,))
    cfg = settings.mysql.model_copy(update={"user": user, "password": SecretStr("pw")})
    try:
        with SnapshotSource(cfg) as src:
            shape = src.table_shape(mysql_db, "items")
            assert len(src.read_chunk(shape, None, 5).rows) == 5
            with mysql_admin.cursor() as cur:
                cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (user,))
                sessions = [row[0] for row in cur.fetchall()]
                assert len(sessions) == 1
                cur.execute(f"KILL CONNECTION {int(sessions[0])}")
            with pytest.raises(SourceUnavailable):
                src.read_chunk(shape, [5], 5)
            chunk = src.read_chunk(shape, [5], 5)
            assert [row["id"] for row in chunk.rows] == [6, 7, 8, 9, 10]
    finally:
        with mysql_admin.cursor() as cur:
            cur.execute("DROP USER IF EXISTS %s@'%%'", (user,))

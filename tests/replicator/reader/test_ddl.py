"""Schema changes mid-stream: every row decodes with the layout it was written with."""

from __future__ import annotations

from typing import Any

import pytest

from replicator.errors import EXIT_FATAL_DATA, UnmappableSchemaError
from replicator.events import Temporal
from tests.replicator.reader.support import (
    head,
    read_topic,
    reader_settings,
    run_until_error,
    running_reader,
    wait_caught_up,
)

pytestmark = pytest.mark.integration


def _names(ev: Any) -> list[str]:
    return [n for n, _ in ev.columns]


def test_rows_decode_with_the_schema_they_were_written_with(
    isolated_env: dict[str, str], mysql_admin: Any, mysql_db: str, kafka_cleanup: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = reader_settings(mysql_db, ["t", "later"], monkeypatch)
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(10))")
    with running_reader(settings) as reader, mysql_admin.cursor() as cur:
        wait_caught_up(reader, head(mysql_admin))
        cur.execute("INSERT INTO t VALUES (1, 10, 'x')")
        cur.execute("ALTER TABLE t ADD COLUMN c DATETIME(3) DEFAULT '2020-01-01 00:00:00.123'")
        cur.execute("INSERT INTO t (id, a, b) VALUES (2, 20, 'y')")
        cur.execute("ALTER TABLE t DROP COLUMN a")
        cur.execute("INSERT INTO t (id, b) VALUES (3, 'z')")
        cur.execute("ALTER TABLE t MODIFY b TEXT")
        cur.execute("ALTER TABLE t MODIFY c DATETIME(3) FIRST")
        cur.execute("UPDATE t SET b = 'moved' WHERE id = 1")
        cur.execute("RENAME TABLE t TO t_old")
        cur.execute("INSERT INTO t_old (id, b) VALUES (4, 'unmapped now')")
        cur.execute("CREATE TABLE t (id BIGINT UNSIGNED PRIMARY KEY, note JSON)")
        cur.execute("INSERT INTO t VALUES (5, '{\"k\": 1}')")
        cur.execute("CREATE TABLE later (k VARCHAR(8) PRIMARY KEY, n INT)")
        cur.execute("INSERT INTO later VALUES ('new', 1)")
        wait_caught_up(reader, head(mysql_admin))
    events = read_topic(settings, f"{mysql_db}.t", min_count=5)
    later = read_topic(settings, f"{mysql_db}.later", min_count=1)

    by_id = {(ev.op, ev.pk["id"]): ev for ev in events}
    assert sorted(by_id) == [("c", 1), ("c", 2), ("c", 3), ("c", 5), ("u", 1)]
    assert _names(by_id[("c", 1)]) == ["id", "a", "b"]
    assert by_id[("c", 2)].columns == (("id", "int(11)"), ("a", "int(11)"), ("b", "varchar(10)"),
                                        ("c", "datetime(3)"))
    assert by_id[("c", 2)].after == {"id": 2, "a": 20, "b": "y",
                                     "c": Temporal("datetime", "2020-01-01T00:00:00.123")}
    assert _names(by_id[("c", 3)]) == ["id", "b", "c"]
    assert by_id[("u", 1)].columns == (("c", "datetime(3)"), ("id", "int(11)"), ("b", "text"))
    assert by_id[("u", 1)].before == {"c": Temporal("datetime", "2020-01-01T00:00:00.123"), "id": 1, "b": "x"}
    assert by_id[("c", 5)].columns == (("id", "bigint(20) unsigned"), ("note", "json"))
    assert len({ev.schema for ev in events}) == 5
    assert [(ev.op, ev.pk) for ev in later] == [("c", {"k": "new"})]


def test_truncate_of_a_mapped_table_stops_after_committing_everything_before_it(
    isolated_env: dict[str, str], mysql_admin: Any, mysql_db: str, kafka_cleanup: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = reader_settings(mysql_db, ["t"], monkeypatch)
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    with running_reader(settings) as reader, mysql_admin.cursor() as cur:
        wait_caught_up(reader, head(mysql_admin))
        cur.execute("INSERT INTO t VALUES (1), (2)")
        cur.execute("TRUNCATE TABLE t")
        cur.execute("INSERT INTO t VALUES (3)")
        error = run_until_error(reader)

    assert isinstance(error, UnmappableSchemaError) and error.exit_code == EXIT_FATAL_DATA
    assert "TRUNCATE" in str(error) and "--from" in str(error)
    assert sorted(ev.pk["id"] for ev in read_topic(settings, f"{mysql_db}.t", min_count=2)) == [1, 2]

"""Fatal conditions stop the reader with exit 3 and a message saying what to do; nothing is skipped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from replicator.adapters.kafka import ensure_topics, producer
from replicator.errors import EXIT_FATAL_DATA, SourceConfigError
from replicator.reader.checkpoint import Checkpoint
from replicator.reader.service import create_reader
from replicator.settings import load_settings
from replicator.topics import checkpoint_topic, pipeline_topics
from tests.replicator.reader.support import FAST, reader_settings, run_until_error

pytestmark = pytest.mark.integration


def _run_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replicator.cli", "run", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_purged_checkpoint_position_exits_3_with_what_to_do(
    isolated_env: dict[str, str],
    mysql_admin: Any,
    mysql_db: str,
    kafka_cleanup: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute("SHOW BINARY LOGS")
        oldest = str(cur.fetchall()[0][0])
    base, _, seq = oldest.rpartition(".")
    purged = f"{base}.{int(seq) - 1:0{len(seq)}d}"  # the file before the oldest one the server still has
    config = tmp_path / "reader.yaml"
    config.write_text(yaml.safe_dump({"tables": [{"source": f"{mysql_db}.t"}]}))
    settings = load_settings(config)
    ensure_topics(settings.kafka, pipeline_topics(settings))
    planted = producer(settings.kafka)
    planted.produce(
        checkpoint_topic(settings.kafka.topic_prefix),
        key=settings.transactional_id.encode(),
        value=Checkpoint(purged, 4).to_json(),
    )
    planted.flush(10)

    res = _run_cli(config)

    assert res.returncode == EXIT_FATAL_DATA, res.stderr[-2000:]
    assert f"{purged} is no longer on the server" in res.stderr
    assert "replicator backfill" in res.stderr


def test_cascading_foreign_key_from_an_unmapped_parent_refuses_to_start(
    isolated_env: dict[str, str],
    mysql_admin: Any,
    mysql_db: str,
    kafka_cleanup: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE parent (id INT PRIMARY KEY)")
        cur.execute(
            "CREATE TABLE child (id INT PRIMARY KEY, pid INT, CONSTRAINT fk_child_parent FOREIGN KEY (pid) "
            "REFERENCES parent (id) ON DELETE CASCADE)"
        )
    reader = create_reader(reader_settings(mysql_db, ["child"], monkeypatch), options=FAST)

    error = run_until_error(reader)

    assert isinstance(error, SourceConfigError) and error.exit_code == EXIT_FATAL_DATA
    assert "fk_child_parent" in str(error) and f"map {mysql_db}.parent" in str(error)


def test_restrict_foreign_key_is_accepted_by_the_start_up_checks(
    isolated_env: dict[str, str],
    mysql_admin: Any,
    mysql_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from replicator.reader.server import ServerInfo
    from replicator.reader.service import preflight

    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE parent (id INT PRIMARY KEY)")
        cur.execute(
            "CREATE TABLE child (id INT PRIMARY KEY, pid INT, CONSTRAINT fk_r FOREIGN KEY (pid) "
            "REFERENCES parent (id) ON DELETE RESTRICT)"
        )
    settings = reader_settings(mysql_db, ["parent", "child"], monkeypatch)
    preflight(settings, ServerInfo(settings.mysql))


def test_mapped_table_without_primary_key_refuses_to_start(
    isolated_env: dict[str, str],
    mysql_admin: Any,
    mysql_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE nokey (a INT, b INT)")
    reader = create_reader(reader_settings(mysql_db, ["nokey"], monkeypatch), options=FAST)

    error = run_until_error(reader)

    assert isinstance(error, SourceConfigError) and error.exit_code == EXIT_FATAL_DATA
    assert "without a primary key" in str(error)


def test_statement_logged_change_to_a_mapped_table_stops_the_reader(
    isolated_env: dict[str, str], mysql_admin: Any, mysql_db: str, kafka_cleanup: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from replicator.errors import UnmappableSchemaError
    from tests.replicator.reader.support import head, running_reader, wait_caught_up

    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    with running_reader(reader_settings(mysql_db, ["t"], monkeypatch)) as reader, mysql_admin.cursor() as cur:
        wait_caught_up(reader, head(mysql_admin))
        cur.execute("SET SESSION binlog_format = 'STATEMENT'")
        cur.execute("INSERT INTO t VALUES (1)")
        error = run_until_error(reader)

    assert isinstance(error, UnmappableSchemaError) and error.exit_code == EXIT_FATAL_DATA
    assert "logged as a statement" in str(error)

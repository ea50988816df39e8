"""The version generation through the real reader on the local stack (docs/design.md): the fence
row's binlog events set the generation of every later event, a fresh start reads the row, and a
kill -9 restart resumes with the generation of its checkpoint. Each test has its own fence table
(in its own database), never the shared default."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from replicator.errors import BrokerUnavailable, SourceConfigError
from replicator.events import split_version
from replicator.fence import INITIAL_FENCE, FenceState, ensure_fence_table, update_fence_sql
from replicator.reader.checkpoint import Checkpoint
from replicator.reader.server import ServerInfo
from replicator.reader.sink import read_last_checkpoint
from replicator.settings import Settings, load_settings
from tests.conftest import admin_connect
from tests.replicator.reader.support import head, read_topic, running_reader, wait_caught_up

pytestmark = pytest.mark.integration


def _config(tmp_path: Path, db: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's reader config; the fence table in the test's database (the environment wins over
    a config file, and reaches the reader process too)."""
    monkeypatch.setenv("REPLICATOR_MYSQL__SERVER_ID", str(random.randint(100_000, 4_000_000)))
    monkeypatch.setenv("REPLICATOR_CUTOVER__FENCE_TABLE", f"{db}.fence")
    config = tmp_path / "reader.yaml"
    config.write_text(yaml.safe_dump({"tables": [{"source": f"{db}.t"}]}))
    return config


def _setup(conn: Any, db: str, state: FenceState) -> None:
    ensure_fence_table(conn, f"{db}.fence")
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        cur.execute(update_fence_sql(f"{db}.fence"), (state.writes_to, state.generation))


def _set_fence(cur: Any, db: str, writes_to: str, generation: int) -> None:
    cur.execute(update_fence_sql(f"{db}.fence"), (writes_to, generation))


def _generations(settings: Settings, db: str, count: int) -> dict[int, int]:
    events = read_topic(settings, f"{db}.t", min_count=count, timeout_s=20)
    assert len(events) == count, [e.pk for e in events]
    return {int(e.pk["id"]): split_version(e.version)[0] for e in events}  # type: ignore[arg-type]


def _wait_started(reader: Any, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while reader.committed is None and reader.error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reader.committed is not None, reader.error


def test_fence_changes_in_the_binlog_set_the_generation_of_the_events_after_them(
    isolated_env: dict[str, str], mysql_admin: Any, mysql_db: str, kafka_cleanup: None, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings(_config(tmp_path, mysql_db, monkeypatch))
    _setup(mysql_admin, mysql_db, FenceState("mysql", 2))
    with running_reader(settings) as reader:
        _wait_started(reader)
        assert reader.committed is not None and reader.committed.generation == 2, "read at the fresh start"
        with mysql_admin.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (1, 0)")
            _set_fence(cur, mysql_db, "dynamodb", 3)  # 4 -> 5: echoes keep MySQL's generation 2
            cur.execute("INSERT INTO t VALUES (2, 0)")
            cur.execute("BEGIN")
            cur.execute("INSERT INTO t VALUES (3, 0)")
            _set_fence(cur, mysql_db, "mysql", 4)  # 5 -> 4, inside a transaction with data changes
            cur.execute("INSERT INTO t VALUES (4, 0)")
            cur.execute("COMMIT")
            cur.execute("UPDATE t SET v = 1 WHERE id = 1")
        wait_caught_up(reader, head(mysql_admin), timeout_s=30)
        assert reader.committed.generation == 4
    events = sorted(read_topic(settings, f"{mysql_db}.t", min_count=5, timeout_s=20),
                    key=lambda e: e.pos.version)  # binlog order across the topic's partitions
    assert [(e.op, e.pk["id"], split_version(e.version)[0]) for e in events] == [
        ("c", 1, 2), ("c", 2, 2), ("c", 3, 2), ("c", 4, 4), ("u", 1, 4)]
    assert [e.table for e in events] == ["t"] * 5, "the fence table produces no event"


def _reader_process(config: Path) -> subprocess.Popen[bytes]:
    with (config.parent / "reader.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "replicator.cli", "run", "--config", str(config), "--max-batch-ms", "50"],
            stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ),
        )


def _wait_checkpoint(settings: Settings, target: tuple[str, int], proc: subprocess.Popen[bytes],
                     config: Path) -> Checkpoint:
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        try:
            cp = read_last_checkpoint(settings, settings.transactional_id.encode(), timeout_s=5)
        except BrokerUnavailable:  # the topic is not created yet
            cp = None
        if cp is not None and (cp.file, cp.offset) >= target:
            return cp
        if proc.poll() is not None:
            log = (config.parent / "reader.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"reader exited {proc.returncode}: {log}")
        time.sleep(0.3)
    raise AssertionError(f"the reader never checkpointed {target}")


def test_a_kill_9_restart_resumes_with_the_generation_of_its_checkpoint(
    isolated_env: dict[str, str], mysql_admin: Any, mysql_db: str, kafka_cleanup: None, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _config(tmp_path, mysql_db, monkeypatch)
    settings = load_settings(config)
    _setup(mysql_admin, mysql_db, FenceState("mysql", 2))
    proc = _reader_process(config)
    try:
        _wait_checkpoint(settings, head(mysql_admin), proc, config)
        with mysql_admin.cursor() as cur:
            cur.execute("INSERT INTO t VALUES (1, 0)")
            _set_fence(cur, mysql_db, "mysql", 4)
            cur.execute("INSERT INTO t VALUES (2, 0)")
        cp = _wait_checkpoint(settings, head(mysql_admin), proc, config)
        assert cp.generation == 4
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    # While the reader is down: a change at generation 4, then the fence moves on to 6.
    with mysql_admin.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (3, 0)")
        _set_fence(cur, mysql_db, "mysql", 6)
        cur.execute("INSERT INTO t VALUES (4, 0)")
    with running_reader(settings) as reader:
        wait_caught_up(reader, head(mysql_admin), timeout_s=30)
    # id 3 carries the checkpoint's 4, not the 6 a fresh read of the fence row would have given
    assert _generations(settings, mysql_db, 4) == {1: 2, 2: 4, 3: 4, 4: 6}


def test_a_fresh_start_without_a_fence_table_is_generation_zero(
    isolated_env: dict[str, str], mysql_admin: Any, mysql_db: str, settings: Settings,
) -> None:
    assert ServerInfo(settings.mysql).fence(f"{mysql_db}.fence") == INITIAL_FENCE


def test_a_fence_table_the_reader_may_not_read_is_a_clear_error(
    isolated_env: dict[str, str], mysql_admin: Any, mysql_db: str, unique: str,
) -> None:
    ensure_fence_table(mysql_admin, f"{mysql_db}.fence")
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    user, password = f"u{unique}", f"p{unique}"
    conn = admin_connect(isolated_env)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
            cur.execute(f"GRANT SELECT ON `{mysql_db}`.`t` TO '{user}'@'%'")
        cfg = load_settings().mysql.model_copy(update={"user": user, "password": SecretStr(password)})
        with pytest.raises(SourceConfigError, match=rf"cannot read the fence table {mysql_db}\.fence"):
            ServerInfo(cfg).fence(f"{mysql_db}.fence")
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
        conn.close()

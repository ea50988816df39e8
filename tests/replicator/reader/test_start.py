"""Where the reader starts and resumes, and what `replicator run` exposes while it runs."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from replicator.reader.gtid import parse_from
from replicator.reader.service import create_reader
from tests.replicator.reader.support import (
    FAST,
    head,
    read_topic,
    reader_settings,
    running_reader,
    wait_caught_up,
)

pytestmark = pytest.mark.integration


def test_restart_resumes_at_the_checkpoint_including_changes_made_while_stopped(
    isolated_env: dict[str, str],
    mysql_admin: Any,
    mysql_db: str,
    kafka_cleanup: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = reader_settings(mysql_db, ["t"], monkeypatch)
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        with running_reader(settings) as reader:
            wait_caught_up(reader, head(mysql_admin))
            cur.execute("INSERT INTO t VALUES (1)")
            wait_caught_up(reader, head(mysql_admin))
        cur.execute("INSERT INTO t VALUES (2)")  # while no reader runs
        with running_reader(settings) as reader:
            cur.execute("INSERT INTO t VALUES (3)")
            wait_caught_up(reader, head(mysql_admin))

    assert sorted(ev.pk["id"] for ev in read_topic(settings, f"{mysql_db}.t", min_count=3)) == [1, 2, 3]


def test_from_a_mariadb_gtid_starts_after_that_transaction(
    isolated_env: dict[str, str],
    mysql_admin: Any,
    mysql_db: str,
    kafka_cleanup: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = reader_settings(mysql_db, ["t"], monkeypatch)
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO t VALUES (1)")
        cur.execute("SELECT @@gtid_binlog_pos")
        gtid = str(cur.fetchone()[0])
        cur.execute("INSERT INTO t VALUES (2)")
    reader = create_reader(settings, start_from=parse_from(gtid), options=FAST)
    reader.start()
    try:
        wait_caught_up(reader, head(mysql_admin))
    finally:
        reader.stop()

    assert [ev.pk["id"] for ev in read_topic(settings, f"{mysql_db}.t", min_count=1)] == [2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_serves_prometheus_metrics_and_exits_0_on_sigterm(
    isolated_env: dict[str, str],
    mysql_admin: Any,
    mysql_db: str,
    kafka_cleanup: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader_settings(mysql_db, ["t"], monkeypatch)  # a private server_id in the environment
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
    config = tmp_path / "reader.yaml"
    config.write_text(yaml.safe_dump({"tables": [{"source": f"{mysql_db}.t"}]}))
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "replicator.cli", "run", "--config", str(config), "--metrics-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        body = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "replicator_reader_checkpoint_offset_bytes" not in body:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                    body = resp.read().decode()
            except OSError:
                time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)

    assert "replicator_reader_lag_seconds" in body and "replicator_reader_rows_total" in body
    assert code == 0


def test_binlog_file_rotation_mid_stream_loses_nothing(
    isolated_env: dict[str, str], mysql_admin: Any, mysql_db: str, kafka_cleanup: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = reader_settings(mysql_db, ["t"], monkeypatch)
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        with running_reader(settings) as reader:
            wait_caught_up(reader, head(mysql_admin))
            cur.execute("INSERT INTO t VALUES (1)")
            cur.execute("FLUSH BINARY LOGS")
            cur.execute("INSERT INTO t VALUES (2)")
            cur.execute("FLUSH BINARY LOGS")
            cur.execute("INSERT INTO t VALUES (3)")
            wait_caught_up(reader, head(mysql_admin))
            retries = sum(s.value for m in reader.metrics.retries.collect() for s in m.samples
                          if s.name.endswith("_total"))

    assert sorted(ev.pk["id"] for ev in read_topic(settings, f"{mysql_db}.t", min_count=3)) == [1, 2, 3]
    assert retries == 0, "a file switch is not a reconnection"

"""DESIGN §4 invariant 5: snapshot + stream converge to exactly the MySQL state.

A 200,000-row table under a concurrent random workload (inserts, updates, deletes and
primary-key updates) for the whole backfill, with the real reader and writer running as
processes, and the backfill killed with SIGKILL half-way and resumed. When the workload
stops and the pipeline catches up, every DynamoDB item equals its MySQL row through the
mapping, and no deleted row survives.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from replicator.backfill.source import SnapshotSource
from replicator.control import names, open_control_store
from replicator.phase import set_migration_phase
from replicator.phase.probes import KafkaOffsetProbe
from replicator.reader.sink import read_last_checkpoint
from replicator.settings import Settings, load_settings
from replicator.topics import table_topic
from tests.conftest import admin_connect
from validators.reconcile import reconcile_table

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS = 200_000
OPS_PER_S = 150  # an application's steady write rate; the writer must keep up with it


def start(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "replicator.cli", *args], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def reader_checkpoint(settings: Settings) -> tuple[str, int]:
    """The reader's last committed binlog position ("", 0 before its first checkpoint)."""
    cp = read_last_checkpoint(settings, settings.transactional_id.encode())
    return ("", 0) if cp is None else (cp.file, cp.offset)


class Workload(threading.Thread):
    """Random single-row changes, as an application would make them, until stopped."""

    def __init__(self, env: dict[str, str], db: str) -> None:
        super().__init__(daemon=True)
        self.conn = admin_connect(env, db)
        self.halt = threading.Event()
        self.rng = random.Random(5)
        self.next_id = ROWS + 1
        self.counts = {"insert": 0, "update": 0, "delete": 0, "pk_update": 0}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.conn.cursor() as cur:
                while not self.halt.wait(1 / OPS_PER_S):
                    self.step(cur)
        except BaseException as exc:  # reported by the test, not swallowed
            self.error = exc

    def step(self, cur: Any) -> None:
        op = self.rng.choices(list(self.counts), weights=[3, 5, 2, 1])[0]
        key = self.rng.randrange(1, self.next_id)
        if op == "insert":
            cur.execute("INSERT INTO items (id, name, qty, price, updated) VALUES (%s, %s, %s, %s, NOW(6))",
                        (self.next_id, f"new-{self.next_id}", 1, "9.99"))
            self.next_id += 1
        elif op == "update":
            cur.execute("UPDATE items SET qty = qty + 1, name = CONCAT('u-', id), updated = NOW(6) "
                        "WHERE id = %s", (key,))
        elif op == "delete":
            cur.execute("DELETE FROM items WHERE id = %s", (key,))
        else:
            cur.execute("UPDATE items SET id = %s WHERE id = %s", (self.next_id, key))
            self.next_id += 1
        self.counts[op] += cur.rowcount


def test_backfill_under_writes_with_a_kill_converges_exactly(
        mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str], kafka_cleanup: None,
        dynamodb: Any, redis_client: Any, tmp_path: Path) -> None:
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE items (id BIGINT PRIMARY KEY, name VARCHAR(40), qty INT, "
                    "price DECIMAL(10,2), updated DATETIME(6), note TEXT)")
        for first_id in range(1, ROWS + 1, 10_000):
            # PyMySQL turns this into one multi-row INSERT per batch.
            cur.executemany("INSERT INTO items (id, name, qty, price, updated, note) "
                            "VALUES (%s, %s, %s, %s, NOW(6), NULL)",
                            [(i, f"item-{i}", i % 100, f"{i / 100:.2f}")
                             for i in range(first_id, first_id + 10_000)])
        cur.execute("SHOW MASTER STATUS")
        binlog_file, binlog_pos = cur.fetchone()[:2]
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"tables: [{{source: {mysql_db}.items, key: {{pk: 'ITEM#{{id}}'}}}}]\n")
    env = dict(isolated_env)
    settings = load_settings(cfg)
    set_migration_phase(2, reason="backfill convergence test", settings=settings, force=True)

    log = tmp_path / "processes.log"
    reader = start(env, log, "run", "--config", str(cfg), "--from", f"{binlog_file}:{binlog_pos}")
    writer = start(env, log, "write", "--config", str(cfg), "--create-tables")
    workload = Workload(env, mysql_db)
    workload.start()
    try:
        first = start(env, log, "backfill", "--config", str(cfg), "--chunk-rows", "2000",
                      "--max-rows-per-s", "0", "--no-progress")
        marker = names.backfill_marker(f"{mysql_db}.items")
        with open_control_store(settings) as store:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and first.poll() is None:
                done = (store.get_marker(marker) or {}).get("done", 0)
                if done >= ROWS // 3:
                    break
                time.sleep(0.2)
        assert first.poll() is None, f"backfill ended before the kill; see {log}"
        os.kill(first.pid, signal.SIGKILL)
        first.wait()

        second = start(env, log, "backfill", "--config", str(cfg), "--chunk-rows", "2000",
                       "--max-rows-per-s", "0", "--no-progress", "--wait-timeout-s", "900")
        # The workload runs for the whole copy: it stops once the last chunk is published.
        with open_control_store(settings) as store:
            while second.poll() is None and not (store.get_marker(marker) or {}).get("complete"):
                time.sleep(0.5)
    finally:
        workload.halt.set()
        workload.join(30)
    assert second.wait(1200) == 0, f"resumed backfill failed or the writer never applied it; see {log}"
    assert workload.error is None, workload.error
    assert all(workload.counts.values()), workload.counts

    try:
        # Catch-up: the reader reaches the binlog head, then the writer drains the topic.
        with admin_connect(env) as conn, conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            head = cur.fetchone()[:2]
        topic = table_topic(settings.kafka.topic_prefix, f"{mysql_db}.items")
        probe = KafkaOffsetProbe(settings.kafka)
        deadline = time.monotonic() + 600
        lag: dict[str, int] = {topic: -1}
        while time.monotonic() < deadline:
            if reader_checkpoint(settings) >= tuple(head):
                lag = probe.topic_lags(settings.writer_group, [topic])
                if lag == {topic: 0}:
                    break
            time.sleep(2)
        assert lag == {topic: 0}, f"the pipeline did not catch up: writer lag {lag}; see {log}"
        assert reader.poll() is None and writer.poll() is None, f"a pipeline process died; see {log}"
        mapping = settings.tables[0]
        with SnapshotSource(settings.mysql) as src:
            report = reconcile_table(settings, mapping, src, dynamodb)
    finally:
        stop(reader)
        stop(writer)
    assert report.differences == [], f"{len(report.differences)} differences, e.g. {report.differences[:3]}"
    assert report.mysql_rows == report.dynamodb_items
    with open_control_store(settings) as store:
        assert (store.get_marker(names.BACKFILL_COMPLETE) or {}).get("complete") is True

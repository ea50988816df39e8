"""DESIGN §4 invariant 8 on the real stack: foreign-key cascades reproduced in DynamoDB.

A random workload over parent / child / grandchild tables (ON DELETE CASCADE, ON UPDATE CASCADE
with the foreign key in the child's key, SET NULL) and a self-referencing table, with the reader
and writer running as processes, each killed with SIGKILL once during it, and a backfill of the
rows that existed before copying them while the workload cascades through them, at every level:
a seeded child row deleted by its parent's cascade before the backfill copied it leaves
grandchildren in DynamoDB that no cascade can reach, which the backfill's absence sweep removes
(replicator.backfill.absence). When the workload stops and the pipeline catches up, every DynamoDB
item equals its MySQL row, row for row, and the children inserted under a parent after its delete
and re-insert are there.
"""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from replicator.backfill.source import SnapshotSource
from replicator.phase import set_migration_phase
from replicator.settings import load_settings
from replicator.topics import table_topic
from tests.consumers.killed_run import (
    Pair,
    RandomWorkload,
    finish_backfill,
    prepare,
    wait_caught_up,
    wait_for,
)
from tests.replicator.backfill.test_backfill_convergence import start, stop
from validators.reconcile import reconcile_table

pytestmark = [pytest.mark.integration]

OPS = 600
OPS_PER_S = 40
# Mapped in an order the backfill must correct (a cascade's parents are copied first).
TABLES = ("grand", "line", "child", "note", "emp", "parent")
SCHEMA = [
    "CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(20))",
    "CREATE TABLE child (id INT PRIMARY KEY, pid INT, note VARCHAR(20), "
    "CONSTRAINT fk_child FOREIGN KEY (pid) REFERENCES parent (id) ON DELETE CASCADE ON UPDATE CASCADE)",
    "CREATE TABLE grand (id INT PRIMARY KEY, cid INT, CONSTRAINT fk_grand FOREIGN KEY (cid) "
    "REFERENCES child (id) ON DELETE CASCADE)",
    "CREATE TABLE line (pid INT, n INT, qty INT, PRIMARY KEY (pid, n), CONSTRAINT fk_line FOREIGN KEY (pid) "
    "REFERENCES parent (id) ON DELETE CASCADE ON UPDATE CASCADE)",
    "CREATE TABLE note (id INT PRIMARY KEY, pid INT, CONSTRAINT fk_note FOREIGN KEY (pid) "
    "REFERENCES parent (id) ON DELETE SET NULL ON UPDATE SET NULL)",
    "CREATE TABLE emp (id INT PRIMARY KEY, boss INT, CONSTRAINT fk_boss FOREIGN KEY (boss) "
    "REFERENCES emp (id) ON DELETE CASCADE)",
]


class Workload(RandomWorkload):
    """Random single-statement changes that cascade, as an application would make them."""

    def __init__(self, env: dict[str, str], db: str, next_id: int) -> None:
        # 1451: a self-reference cascade deeper than InnoDB goes
        super().__init__(env, db, next_id, seed=16, ops=OPS, ops_per_s=OPS_PER_S, tolerated=(1451,))
        self.reinserted_children: list[int] = []  # inserted under a parent after its delete + re-insert

    def _any(self, cur: Any, table: str, column: str = "id") -> Any:
        cur.execute(f"SELECT {column} FROM {table} ORDER BY RAND() LIMIT 1")
        row = cur.fetchone()
        return row[0] if row else None

    def step(self, cur: Any) -> None:
        op = self.rng.choices(["parent", "child", "grand", "line", "note", "emp", "del_parent", "pk_parent",
                               "reinsert", "move_child", "del_child", "del_emp"],
                              weights=[4, 6, 5, 3, 2, 4, 2, 2, 1, 2, 1, 1])[0]
        parent = self._any(cur, "parent")
        if op == "parent" or parent is None:
            cur.execute("INSERT INTO parent VALUES (%s, 'p')", (self.new_id(),))
        elif op == "child":
            cur.execute("INSERT INTO child VALUES (%s, %s, 'c')", (self.new_id(), parent))
        elif op == "grand":
            cur.execute("INSERT INTO grand VALUES (%s, %s)", (self.new_id(), self._any(cur, "child")))
        elif op == "line":
            cur.execute("INSERT INTO line VALUES (%s, %s, 1)", (parent, self.new_id()))
        elif op == "note":
            cur.execute("INSERT INTO note VALUES (%s, %s)", (self.new_id(), parent))
        elif op == "emp":
            cur.execute("INSERT INTO emp VALUES (%s, %s)", (self.new_id(), self._any(cur, "emp")))
        elif op == "del_parent":
            cur.execute("DELETE FROM parent WHERE id = %s", (parent,))
        elif op == "pk_parent":
            cur.execute("UPDATE parent SET id = %s WHERE id = %s", (self.new_id(), parent))
        elif op == "reinsert":
            cur.execute("DELETE FROM parent WHERE id = %s", (parent,))
            cur.execute("INSERT INTO parent VALUES (%s, 'again')", (parent,))
            for _ in range(2):
                child = self.new_id()
                cur.execute("INSERT INTO child VALUES (%s, %s, 'after')", (child, parent))
                self.reinserted_children.append(child)
        elif op == "move_child":
            cur.execute("UPDATE child SET pid = %s, note = 'moved' WHERE id = %s",
                        (parent, self._any(cur, "child")))
        elif op == "del_child":
            cur.execute("DELETE FROM child WHERE id = %s", (self._any(cur, "child"),))
        else:
            cur.execute("DELETE FROM emp WHERE id = %s", (self._any(cur, "emp"),))


def _seed(cur: Any) -> int:
    """Rows from before the pipeline started, which the backfill copies."""
    cur.executemany("INSERT INTO parent VALUES (%s, 'p')", [(i,) for i in range(1, 81)])
    cur.executemany("INSERT INTO child VALUES (%s, %s, 'c')", [(100 + i, 1 + i % 80) for i in range(240)])
    cur.executemany("INSERT INTO grand VALUES (%s, %s)", [(400 + i, 100 + i % 240) for i in range(240)])
    cur.executemany("INSERT INTO line VALUES (%s, %s, 1)", [(1 + i % 80, i) for i in range(160)])
    cur.executemany("INSERT INTO note VALUES (%s, %s)", [(700 + i, 1 + i % 80) for i in range(80)])
    cur.execute("INSERT INTO emp VALUES (800, NULL)")
    cur.executemany("INSERT INTO emp VALUES (%s, %s)", [(801 + i, 800 + i // 3) for i in range(60)])
    return 1000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def test_cascades_converge_row_for_row_under_kills_and_a_racing_backfill(
        mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str], kafka_cleanup: None,
        dynamodb: Any, redis_client: Any, tmp_path: Path) -> None:
    next_id, start_at = prepare(mysql_admin, SCHEMA, _seed)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("tables:\n" + "".join(f"  - source: {mysql_db}.{t}\n" for t in TABLES))
    settings = load_settings(cfg)
    set_migration_phase(2, reason="cascade test", settings=settings, force=True)
    log = tmp_path / "processes.log"
    port = _free_port()
    pair = Pair(isolated_env, cfg, log, start_at, writer_env={"REPLICATOR_METRICS__PORT": str(port)})
    workload = Workload(isolated_env, mysql_db, next_id)
    backfill = None
    try:
        # The writer creates the tables (and the GSI per cascading foreign key) before the backfill writes.
        wait_for("the writer's tables", lambda: len(dynamodb.list_tables()["TableNames"]) > 0
                  and _tables_ready(dynamodb, f"{settings.dynamodb.table_prefix}"), 120)
        # Every table's chunks race the workload's cascades: a child row deleted by its parent's
        # cascade before its chunk was read leaves grandchildren (seeded, or inserted meanwhile) that
        # only the backfill's absence sweep finds.
        backfill = start(isolated_env, log, "backfill", "--config", str(cfg), "--chunk-rows", "20",
                         "--max-rows-per-s", "50", "--no-progress", "--wait-timeout-s", "600")
        workload.start()
        pair.kill_each_once(workload, OPS)
        finish_backfill(backfill, pair.writer, log)
        wait_caught_up(settings, isolated_env, [table_topic(settings.kafka.topic_prefix, f"{mysql_db}.{t}")
                                                for t in TABLES], pair.reader, pair.writer, log)
        cascaded = _metric(port, "replicator_writer_cascaded_changes_total")
        reports = []
        with SnapshotSource(settings.mysql) as src:
            for mapping in settings.tables:
                reports.append(reconcile_table(settings, mapping, src, dynamodb))
    finally:
        workload.halt.set()
        for proc in (pair.reader, pair.writer, backfill):
            if proc is not None:
                stop(proc)
    for report in reports:
        assert report.differences == [], (f"{report.table}: {len(report.differences)} differences, e.g. "
                                          f"{report.differences[:3]}; see {log}")
        assert report.mysql_rows == report.dynamodb_items
    text = log.read_text()
    assert "Traceback" not in text
    assert "backfill_absence_swept" in text, "the backfill did not sweep the tables with grandchildren"
    assert cascaded > 0, "no cascaded change was counted"
    assert workload.reinserted_children, "the workload never deleted and re-inserted a parent"
    with mysql_admin.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM child WHERE note = 'after'")
        assert cur.fetchone()[0] > 0  # some children inserted after a re-insert are still there (and matched)


def _tables_ready(client: Any, prefix: str) -> bool:
    names = [n for n in client.list_tables()["TableNames"] if n.startswith(prefix)]
    return len(names) >= len(TABLES) + 1  # the mapped tables and the cascade records

"""kill -9 of ``replicator reverse`` at random instants while the application writes: nothing is lost,
nothing is applied out of order, MySQL ends equal to DynamoDB row for row."""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from replicator.control import names, open_control_store
from replicator.diff import describe, diff_tables
from tests.consumers.reverse.conftest import ReverseEnv

pytestmark = pytest.mark.integration

# Every row change the reverse replication makes is logged by a trigger with the connection that
# made it: one connection per process, so each process's order of changes per row can be checked.
DDL = """CREATE TABLE k (id INT PRIMARY KEY, n INT NOT NULL, note VARCHAR(40) NULL);
CREATE TABLE audit (seq BIGINT AUTO_INCREMENT PRIMARY KEY, conn BIGINT NOT NULL, id INT NOT NULL,
                    n INT NULL, op CHAR(1) NOT NULL);
CREATE TRIGGER k_ins AFTER INSERT ON k FOR EACH ROW
  INSERT INTO audit (conn, id, n, op) VALUES (CONNECTION_ID(), NEW.id, NEW.n, 'i');
CREATE TRIGGER k_upd AFTER UPDATE ON k FOR EACH ROW
  INSERT INTO audit (conn, id, n, op) VALUES (CONNECTION_ID(), NEW.id, NEW.n, 'u');
CREATE TRIGGER k_del AFTER DELETE ON k FOR EACH ROW
  INSERT INTO audit (conn, id, n, op) VALUES (CONNECTION_ID(), OLD.id, OLD.n, 'd')"""
KILLS = 10
KEYS = 30


class Application(threading.Thread):
    """Phase-5 writes: puts (``n`` grows with every write, so per row it only goes up) and deletes."""

    def __init__(self, env: ReverseEnv, seed: int) -> None:
        super().__init__(daemon=True)
        self.env, self.rng = env, random.Random(seed)
        self.stop = threading.Event()
        self.writes = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        live: set[int] = set()
        try:
            while not self.stop.is_set():
                key = self.rng.randrange(KEYS)
                self.writes += 1
                if key in live and self.rng.random() < 0.2:
                    self.env.delete({"id": key})
                    live.discard(key)
                else:
                    self.env.put({"id": key, "n": self.writes, "note": f"w{self.writes}"})
                    live.add(key)
                self.stop.wait(0.03)  # a steady load, not a flood of the shared DynamoDB Local
        except BaseException as exc:  # reported by the test
            self.error = exc


def spawn(env: ReverseEnv, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        cmd = [sys.executable, "-m", "replicator.cli", "reverse", "--config", str(env.config),
               "--poll-interval-s", "0.05", "--settle-s", "0.05", "--page-size", "25"]
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))


def heartbeat_after(env: ReverseEnv, since: float, timeout_s: float = 30.0, **want: Any) -> dict[str, Any]:
    """The first heartbeat published after ``since`` (and matching ``want``: caught_up_after=t)."""
    deadline = time.monotonic() + timeout_s
    after = want.get("caught_up_after")
    with open_control_store(env.settings) as store:
        while True:
            beat = store.get_marker(names.REVERSE_HEARTBEAT) or {}
            if beat.get("ts", 0) > since and (after is None or beat.get("caught_up_at", 0) > after):
                return beat
            assert time.monotonic() < deadline, f"no such heartbeat within {timeout_s} s: {beat}"
            time.sleep(0.05)


def test_kill_9_at_random_instants_loses_nothing_and_applies_each_rows_changes_in_order(
        reverse_env: Any, tmp_path: Path) -> None:
    env: ReverseEnv = reverse_env(DDL, "k")
    rng = random.Random(20261127)
    log = tmp_path / "reverse.log"
    app = Application(env, seed=11)
    app.start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(KILLS):
            started = time.time()
            procs.append(spawn(env, log))
            heartbeat_after(env, started, timeout_s=60)  # it is up and applying
            time.sleep(rng.uniform(0.0, 0.5))
            procs[-1].send_signal(signal.SIGKILL)
            procs[-1].wait(10)
            assert procs[-1].returncode == -signal.SIGKILL, log.read_text()[-2000:]
    finally:
        app.stop.set()
        app.join(30)
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    assert app.error is None, app.error
    last_write = time.time()
    proc = spawn(env, log)
    try:
        beat = heartbeat_after(env, last_write, timeout_s=90, caught_up_after=last_write)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert beat["deadletters"] == 0 and app.writes > 50

    differences = diff_tables(env.mapper.table, env.mysql_rows(), env.dynamodb_rows())
    assert not differences, "\n".join(describe(d) for d in differences[:20])

    with env.admin.cursor() as cur:
        cur.execute("SELECT conn, id, n, op FROM audit ORDER BY seq")
        audit = cur.fetchall()
    runs = {conn for conn, *_ in audit}
    assert len(runs) >= 2, "the kills should have hit processes that were applying"
    seen: dict[tuple[int, int], list[int]] = defaultdict(list)
    for conn, key, n, op in audit:
        if op in ("i", "u"):
            seen[(conn, key)].append(n)
    backwards = {k: ns for k, ns in seen.items() if any(b <= a for a, b in itertools.pairwise(ns))}
    assert not backwards, f"changes applied out of order (connection, id) -> n: {backwards}"

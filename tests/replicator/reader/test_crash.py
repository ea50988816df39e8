"""kill -9 of a real ``replicator run`` at 20 random instants during a mixed workload: afterwards
the read_committed content of the topic is exactly the binlog's committed row-change sequence
(nothing missing, no duplicate, per-key order kept)."""

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
import yaml

from replicator.errors import BrokerUnavailable
from replicator.reader.sink import read_last_checkpoint
from replicator.settings import Settings, load_settings
from tests.conftest import admin_connect
from tests.replicator.reader.oracle import binlog_changes, event_change, per_key
from tests.replicator.reader.support import head, read_topic_raw

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLS = 20


def _workload(env: dict[str, str], db: str, stop: threading.Event, seed: int) -> int:
    """Mixed transactions until ``stop``: inserts, updates, deletes, multi-row, rollbacks, PK updates."""
    rng = random.Random(seed)
    conn = admin_connect(env, db)
    conn.autocommit(False)
    live: list[int] = []
    next_id, txs = 1, 0
    try:
        with conn.cursor() as cur:
            while not stop.is_set():
                kind = rng.random()
                if kind < 0.35 or len(live) < 20:
                    rows = [
                        (next_id + i, rng.randint(0, 10**6), f"s{rng.random()}")
                        for i in range(rng.randint(1, 5))
                    ]
                    cur.executemany("INSERT INTO t (id, v, s) VALUES (%s, %s, %s)", rows)
                    next_id += len(rows)
                    live += [r[0] for r in rows]
                elif kind < 0.6:
                    ids = rng.sample(live, min(len(live), rng.randint(1, 4)))
                    for i in ids:
                        cur.execute("UPDATE t SET v = v + 1, s = %s WHERE id = %s", (f"u{rng.random()}", i))
                elif kind < 0.72:
                    i = live.pop(rng.randrange(len(live)))
                    cur.execute("DELETE FROM t WHERE id = %s", (i,))
                elif kind < 0.8:  # a rolled-back transaction: nothing of it may appear
                    cur.execute("INSERT INTO t (id, v, s) VALUES (%s, 0, 'rolled back')", (10**8 + txs,))
                    cur.execute("UPDATE t SET v = -1 WHERE id = %s", (rng.choice(live),))
                    conn.rollback()
                    continue
                elif kind < 0.88:  # primary-key update
                    old = live.pop(rng.randrange(len(live)))
                    cur.execute("UPDATE t SET id = %s WHERE id = %s", (next_id, old))
                    live.append(next_id)
                    next_id += 1
                else:  # a multi-statement transaction touching many rows
                    cur.execute("UPDATE t SET v = v * 2 WHERE id BETWEEN %s AND %s", (next_id - 30, next_id))
                    cur.executemany(
                        "INSERT INTO t (id, v, s) VALUES (%s, 1, 'multi')",
                        [(next_id + i,) for i in range(10)],
                    )
                    live += list(range(next_id, next_id + 10))
                    next_id += 10
                conn.commit()
                txs += 1
                time.sleep(rng.uniform(0, 0.01))
    finally:
        conn.close()
    return txs


def _reader(config: Path) -> subprocess.Popen[bytes]:
    with (config.parent / "reader.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "replicator.cli", "run", "--config", str(config), "--max-batch-ms", "50"],
            stdout=subprocess.DEVNULL, stderr=log, env=dict(os.environ),
        )


def _wait_checkpoint(
    settings: Settings, target: tuple[str, int], proc: subprocess.Popen[bytes], config_dir: Path
) -> None:
    deadline = time.monotonic() + 120
    key = settings.transactional_id.encode()
    while time.monotonic() < deadline:
        try:
            cp = read_last_checkpoint(settings, key, timeout_s=5)
        except BrokerUnavailable:  # the topic is not created yet
            cp = None
        if cp is not None and (cp.file, cp.offset) >= target:
            return
        if proc.poll() is not None:
            log = (config_dir / "reader.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"reader exited {proc.returncode}: {log}")
        time.sleep(0.5)
    raise AssertionError(f"the reader never checkpointed {target}")


def test_kill_9_at_random_instants_loses_and_duplicates_nothing(
    isolated_env: dict[str, str],
    mysql_admin: Any,
    mysql_db: str,
    kafka_cleanup: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seed = random.randrange(10**6)
    print(f"crash test seed {seed}")
    rng = random.Random(seed)
    monkeypatch.setenv("REPLICATOR_MYSQL__SERVER_ID", str(random.randint(100_000, 4_000_000)))
    config = tmp_path / "reader.yaml"
    config.write_text(yaml.safe_dump({"tables": [{"source": f"{mysql_db}.t"}]}))
    settings = load_settings(config)
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v BIGINT, s VARCHAR(64))")
    start = head(mysql_admin)

    procs = [_reader(config)]
    stop = threading.Event()
    result: list[int] = []
    load = threading.Thread(target=lambda: result.append(_workload(isolated_env, mysql_db, stop, seed)))
    try:
        # The first start anchors a checkpoint at the head, before the workload begins.
        _wait_checkpoint(settings, start, procs[-1], tmp_path)
        load.start()
        try:
            for _ in range(KILLS):
                time.sleep(rng.uniform(0.3, 2.5))
                procs[-1].send_signal(signal.SIGKILL)
                procs[-1].wait()
                procs.append(_reader(config))
        finally:
            stop.set()
            if load.is_alive():
                load.join()
        end = head(mysql_admin)
        _wait_checkpoint(settings, end, procs[-1], tmp_path)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(30)

    expected = binlog_changes(isolated_env, mysql_db, "t", ("id",), start, end)
    got_raw = read_topic_raw(settings, f"{mysql_db}.t", min_count=len(expected))
    got = [event_change(ev, ("id",)) for _, ev in got_raw]
    assert result and result[0] > 100 and len(expected) > 1000, "the workload ran"
    assert len(got) == len(expected), "no event missing, none duplicated"
    assert per_key(got) == per_key(expected), "each key's changes in binlog order"
    partitions: dict[int, list[int]] = {}
    for part, ev in got_raw:
        partitions.setdefault(part, []).append(ev.version)
    assert all(v == sorted(v) for v in partitions.values()), "versions never go back within a partition"

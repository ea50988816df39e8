"""A Kafka broker restart and a MariaDB restart mid-stream: the reader retries, resumes, loses nothing.

These restart servers of the local process stack (``stack_ctl``); run them against a private
stack while developing (see tests/conftest.py).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pymysql
import pytest

from tests.conftest import admin_connect, stack_ctl
from tests.replicator.reader.oracle import binlog_changes, event_change, per_key
from tests.replicator.reader.support import (
    FAST,
    head,
    read_topic,
    reader_settings,
    running_reader,
    wait_caught_up,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _workload(env: dict[str, str], db: str, stop: threading.Event) -> int:
    """Single-row inserts and updates until ``stop``, reconnecting while the server is down."""
    rng = random.Random()
    committed, next_id, conn = 0, 1, None
    while not stop.is_set():
        try:
            if conn is None:
                conn = admin_connect(env, db)
            with conn.cursor() as cur:
                if next_id > 5 and rng.random() < 0.4:
                    cur.execute("UPDATE t SET v = v + 1 WHERE id = %s", (rng.randrange(1, next_id),))
                else:
                    cur.execute("INSERT INTO t (id, v) VALUES (%s, 0)", (next_id,))
                    next_id += 1
            committed += 1
        except pymysql.err.MySQLError:
            conn = None
            next_id += 1000  # an insert whose commit is unknown must not collide on retry
            time.sleep(0.2)
        time.sleep(0.005)
    return committed


def _restart_mid_stream(env: dict[str, str], db: str, monkeypatch: pytest.MonkeyPatch, service: str) -> None:
    settings = reader_settings(db, ["t"], monkeypatch)
    conn = admin_connect(env, db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
    start = head(conn)
    conn.close()
    stop = threading.Event()
    counts: list[int] = []
    load = threading.Thread(target=lambda: counts.append(_workload(env, db, stop)))
    with running_reader(settings) as reader:
        wait_caught_up(reader, start)
        load.start()
        try:
            time.sleep(2)
            if service == "kafka":  # down for longer than the reader's Kafka timeout: the producer is rebuilt
                stack_ctl("stop", service)
                time.sleep(FAST.kafka_timeout_s + 4)
                stack_ctl("start", service)
            else:
                stack_ctl("restart", service)
            time.sleep(2)
        finally:
            stop.set()
            load.join()
        conn = admin_connect(env, db)
        end = head(conn)
        conn.close()
        wait_caught_up(reader, end, timeout_s=180)
        retries = sum(s.value for m in reader.metrics.retries.collect() for s in m.samples
                      if s.name.endswith("_total"))
    print(f"{service} restart: reader retries {retries}")

    expected = binlog_changes(env, db, "t", ("id",), start, end)
    got = [event_change(ev, ("id",)) for ev in read_topic(settings, f"{db}.t", min_count=len(expected))]
    assert counts[0] > 100 and retries >= 1, "the workload ran and the reader had to retry"
    assert len(got) == len(expected)
    assert per_key(got) == per_key(expected)


@pytest.fixture()
def restart_db(isolated_env: dict[str, str], unique: str) -> Iterator[str]:
    """A database whose teardown opens a fresh connection (the server restarts in between)."""
    conn = admin_connect(isolated_env)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{unique}`")
    conn.close()
    yield unique
    conn = admin_connect(isolated_env)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{unique}`")
    conn.close()


def test_kafka_broker_restart_mid_stream_resumes_without_loss(
    isolated_env: dict[str, str], restart_db: str, kafka_cleanup: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _restart_mid_stream(isolated_env, restart_db, monkeypatch, "kafka")


def test_mariadb_restart_mid_stream_resumes_without_loss(
    isolated_env: dict[str, str], restart_db: str, kafka_cleanup: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _restart_mid_stream(isolated_env, restart_db, monkeypatch, "mariadb")

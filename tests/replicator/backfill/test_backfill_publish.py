"""The backfill on the real stack: every row published once as a snapshot event, resumable,
and bad input (no primary key, unknown table, a table that vanishes) stops with a clear error."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from confluent_kafka import Consumer

from replicator.backfill.runner import Backfill, BackfillOptions, TableProgress
from replicator.control import names, open_control_store
from replicator.events import ChangeEvent
from replicator.settings import Settings, load_settings
from replicator.topics import table_topic

pytestmark = pytest.mark.integration


def settings_for(db: str, *tables: str) -> Settings:
    return load_settings(tables=[{"source": f"{db}.{t}"} for t in tables])


def consume_all(settings: Settings, topic: str, expect: int, timeout_s: float = 60) -> list[ChangeEvent]:
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": f"{topic}.check",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.subscribe([topic])
    events: list[ChangeEvent] = []
    deadline = time.monotonic() + timeout_s
    idle_until = None
    while time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            if len(events) >= expect:
                idle_until = idle_until or time.monotonic() + 2  # catch duplicates arriving late
                if time.monotonic() > idle_until:
                    break
            continue
        if msg.error() is None:
            events.append(ChangeEvent.from_json(msg.value()))
    consumer.close()
    return events


def make_table(conn: Any, rows: int) -> None:
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE items (region VARCHAR(8), id INT, price DECIMAL(10,2), "
                    "made DATETIME(3), PRIMARY KEY (region, id))")
        cur.executemany("INSERT INTO items VALUES (%s, %s, %s, %s)",
                        [(r, i, f"{i}.25", f"2024-01-02 03:04:05.{i % 1000:03d}")
                         for r in ("eu", "us") for i in range(rows // 2)])


def test_every_row_is_published_once_as_a_snapshot_event(
        mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str], kafka_cleanup: None,
        redis_client: Any) -> None:
    make_table(mysql_admin, 2000)
    settings = settings_for(mysql_db, "items")
    opts = BackfillOptions(chunk_rows=300, max_rows_per_s=0, wait_for_writer=False)
    results = Backfill(settings, opts).run()
    assert [(p.done, p.complete) for p in results] == [(2000, True)]

    events = consume_all(settings, table_topic(settings.kafka.topic_prefix, f"{mysql_db}.items"), 2000)
    keys = [(e.pk["region"], e.pk["id"]) for e in events]
    assert len(keys) == 2000 and len(set(keys)) == 2000
    assert {e.op for e in events} == {"r"}
    with mysql_admin.cursor() as cur:
        cur.execute("SELECT region, id, CAST(price AS CHAR), CAST(made AS CHAR) FROM items")
        expected = {(r, i): (p, m.replace(" ", "T")) for r, i, p, m in cur.fetchall()}
    for e in events:
        row = e.after
        assert row is not None
        assert (str(row["price"]), row["made"].text) == expected[(e.pk["region"], e.pk["id"])]  # type: ignore[union-attr]


def test_a_stopped_backfill_resumes_from_its_cursor(
        mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str], kafka_cleanup: None,
        redis_client: Any) -> None:
    make_table(mysql_admin, 1000)
    settings = settings_for(mysql_db, "items")
    stop = threading.Event()

    def stop_after_three_chunks(p: TableProgress) -> None:
        if p.chunks == 3:
            stop.set()

    first = Backfill(settings, BackfillOptions(chunk_rows=100, max_rows_per_s=0, wait_for_writer=False),
                     stop=stop, on_progress=stop_after_three_chunks).run()
    assert first[0].done == 300 and not first[0].complete
    opts = BackfillOptions(chunk_rows=100, max_rows_per_s=0, wait_for_writer=False)
    second = Backfill(settings, opts).run()
    assert second[0].done == 1000 and second[0].complete

    events = consume_all(settings, table_topic(settings.kafka.topic_prefix, f"{mysql_db}.items"), 1000)
    keys = [(e.pk["region"], e.pk["id"]) for e in events]
    assert len(keys) == 1000 and len(set(keys)) == 1000


def test_backfill_complete_is_not_set_until_the_writer_applied_it(
        mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str], kafka_cleanup: None,
        redis_client: Any) -> None:
    make_table(mysql_admin, 10)
    settings = settings_for(mysql_db, "items")
    # No writer runs in this test: the wait must time out and leave the mark unset.
    Backfill(settings, BackfillOptions(max_rows_per_s=0, wait_timeout_s=2)).run()
    with open_control_store(settings) as store:
        done = store.get_marker(names.BACKFILL_COMPLETE)
        table = store.get_marker(names.backfill_marker(f"{mysql_db}.items"))
    assert done is not None and done["complete"] is False and done["published"] is True
    assert table is not None and table["complete"] is True and table["done"] == 10


def test_a_table_dropped_mid_backfill_is_reported_not_skipped(
        mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str], kafka_cleanup: None,
        redis_client: Any) -> None:
    make_table(mysql_admin, 1000)
    settings = settings_for(mysql_db, "items")

    def drop_after_first_chunk(p: TableProgress) -> None:
        if p.chunks == 1:
            with mysql_admin.cursor() as cur:
                cur.execute("DROP TABLE items")

    results = Backfill(settings, BackfillOptions(chunk_rows=100, max_rows_per_s=0, wait_for_writer=False),
                       on_progress=drop_after_first_chunk).run()
    assert results[0].error is not None and "disappeared" in results[0].error
    assert not results[0].complete
    with open_control_store(settings) as store:
        done = store.get_marker(names.BACKFILL_COMPLETE)
    assert done is not None and done["complete"] is False and done["missing"] == [f"{mysql_db}.items"]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "replicator.cli", "backfill", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_mapped_table_without_primary_key_exits_3_naming_it(
        mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str], tmp_path: Any) -> None:
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE nokey (a INT, b INT)")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"tables: [{{source: {mysql_db}.nokey}}]\n")
    res = cli(isolated_env, "--config", str(cfg), "--no-progress")
    assert res.returncode == 3, res.stderr
    assert f"{mysql_db}.nokey has no primary key" in res.stderr


def test_an_unmapped_table_option_exits_2(isolated_env: dict[str, str], tmp_path: Any) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tables: [{source: shop.users}]\n")
    res = cli(isolated_env, "--config", str(cfg), "--table", "shop.orders")
    assert res.returncode == 2
    assert "--table shop.orders is not a mapped table" in res.stderr

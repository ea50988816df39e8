"""Reverse replication on the real stack: phase-5 application writes land in MySQL, nothing else does."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from replicator.control import names, open_control_store
from replicator.mapping import ORIGIN_CDC, ORIGIN_SNAPSHOT
from replicator.mapping.pytypes import to_python
from tests.consumers.reverse.conftest import ReverseEnv, drain

pytestmark = pytest.mark.integration

ITEMS = """CREATE TABLE items (
  id BIGINT UNSIGNED NOT NULL PRIMARY KEY, email VARCHAR(20) NOT NULL, note VARCHAR(8) NULL,
  qty INT NOT NULL DEFAULT 0, tiny TINYINT NULL, price DECIMAL(12,3) NULL, ratio FLOAT NULL,
  score DOUBLE NULL, kind ENUM('a','b','c') NULL, tags SET('x','y','z') NULL, code BINARY(4) NULL,
  data VARBINARY(16) NULL, made DATE NULL, at_ DATETIME(6) NULL, seen TIMESTAMP(3) NULL, dur TIME(2) NULL,
  doc JSON NULL, yr YEAR NULL, flags BIT(10) NULL, secret VARCHAR(10) NOT NULL DEFAULT 'keep',
  UNIQUE KEY (email))"""


def values(i: int, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": i, "email": f"u{i}@x.io", "note": "héllo", "qty": -5, "tiny": -128,
        "price": Decimal("12345.678"), "ratio": 1.2345678, "score": 0.1, "kind": "b", "tags": "x,z",
        "code": b"\x01\x02", "data": b"\x00\xff",
        "made": dt.date(2024, 2, 29), "at_": dt.datetime(2024, 1, 1, 12, 0, 0, 123456),
        "seen": dt.datetime(2024, 6, 1, 8, 30, 0, 125000), "dur": -dt.timedelta(hours=1, seconds=3.25),
        "doc": '{"a": [1, 2], "b": "é"}', "yr": 2024, "flags": b"\x03\xff",
    }
    row.update(over)
    return row


def pymysql_shape(env: ReverseEnv, row: dict[str, Any]) -> dict[str, Any]:
    """The row as the application reads it back from DynamoDB in phase 5 (the client's contract:
    the mapping's inverse, then PyMySQL's types), e.g. an empty SET is NULL there."""
    item = env.mapper.to_item(env.item_row(row))
    back = env.mapper.to_row(item)
    return {c: to_python(env.mapper.types[c], back[c]) for c in row}


def heartbeat(env: ReverseEnv) -> dict[str, Any]:
    with open_control_store(env.settings) as store:
        return store.get_marker(names.REVERSE_HEARTBEAT) or {}


def test_application_puts_updates_deletes_and_key_changes_land_in_mysql_as_pymysql_reads_them(
        reverse_env: Any) -> None:
    env: ReverseEnv = reverse_env(ITEMS, "items", exclude=["secret"])
    with env.admin.cursor() as cur:  # a row from before phase 5, which the application then deletes
        cur.execute("INSERT INTO items (id, email) VALUES (3, 'old@x.io')")
    for i in (1, 2):
        env.put(values(i))
    env.put(values(2, qty=7, note=None, tags="", doc="[]"))
    env.delete({"id": 3})
    env.move(values(1), {"id": 10})
    with env.reverse() as rev:
        drain(rev)
        assert rev.metrics.applied.labels(f"{env.db}.items", "delete")._value.get() >= 1
    assert env.mysql_row(1) is None and env.mysql_row(3) is None
    updated = pymysql_shape(env, values(2, qty=7, note=None, tags="", doc="[]"))
    assert updated["tags"] is None  # DESIGN §3.2: an empty SET is NULL in DynamoDB
    assert env.mysql_row(2) == {**updated, "secret": "keep"}
    assert env.mysql_row(10) == {**pymysql_shape(env, {**values(1), "id": 10}), "secret": "keep"}
    assert env.mysql_rows() == env.dynamodb_rows()


def test_records_of_cdc_and_snapshot_writes_are_not_applied(reverse_env: Any) -> None:
    env: ReverseEnv = reverse_env(ITEMS, "items", exclude=["secret"])
    env.put(values(1), origin=ORIGIN_CDC)
    env.put(values(2), origin=ORIGIN_SNAPSHOT)
    env.put(values(3))
    with env.reverse() as rev:
        drain(rev)
        assert rev.metrics.skipped.labels("origin_cdc")._value.get() == 1
        assert rev.metrics.skipped.labels("origin_snapshot")._value.get() == 1
    assert (env.mysql_row(1), env.mysql_row(2)) == (None, None)
    assert env.mysql_row(3) is not None


def test_an_item_mysql_cannot_hold_is_a_dead_letter_named_in_the_heartbeat_until_a_later_write_fixes_it(
        reverse_env: Any) -> None:
    env: ReverseEnv = reverse_env(ITEMS, "items", exclude=["secret"])
    env.put(values(5, email="x" * 30 + "@x.io"))  # VARCHAR(20)
    env.put(values(6), nickname={"S": "no such column"})
    env.put(values(7))
    with env.reverse() as rev:
        drain(rev)
        beat = heartbeat(env)
        assert beat["deadletters"] == 2
        assert beat["deadletter_keys"] == [f"{env.db}.items id=5", f"{env.db}.items id=6"]
        assert env.mysql_row(5) is None and env.mysql_row(6) is None and env.mysql_row(7) is not None
        with open_control_store(env.settings) as store:
            letters = store.list_markers(names.REVERSE_DEADLETTER_PREFIX)
        assert {d["key"]: d["reason"] for d in letters.values()}["id=6"] == "attribute_without_column"
        env.put(values(5))
        drain(rev)
        assert heartbeat(env)["deadletter_keys"] == [f"{env.db}.items id=6"]
    assert env.mysql_row(5) is not None


def test_a_mapped_table_without_a_stream_is_refused_by_name_with_exit_2(
        reverse_env: Any, tmp_path: Path, unique: str) -> None:
    env: ReverseEnv = reverse_env(ITEMS, "items", exclude=["secret"])
    cfg = yaml.safe_load(env.config.read_text())
    cfg["tables"].append({"source": f"{env.db}.plain", "target": "plain"})
    with env.admin.cursor() as cur:
        cur.execute("CREATE TABLE plain (id INT PRIMARY KEY)")
    env.dynamodb.create_table(TableName=f"{unique}-plain", BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}])
    config = tmp_path / "two.yaml"
    config.write_text(yaml.safe_dump(cfg))
    done = subprocess.run([sys.executable, "-m", "replicator.cli", "reverse", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, env=dict(os.environ))
    assert done.returncode == 2, done.stderr
    assert f"'{unique}-plain' has no stream" in done.stderr and "--create-tables" in done.stderr


def test_the_heartbeat_says_how_far_behind_and_when_it_last_caught_up(reverse_env: Any) -> None:
    env: ReverseEnv = reverse_env(ITEMS, "items", exclude=["secret"])
    for i in range(5):
        env.put(values(i))
    written = time.time()
    with env.reverse(page_size=2) as rev:
        rev.step()
        beat = heartbeat(env)
        assert beat["caught_up_at"] == 0.0 and beat["records_behind"] > 0
        drain(rev)
        beat = heartbeat(env)
    assert beat["caught_up_at"] > written and beat["lag_s"] == 0 and beat["records_behind"] == 0
    assert beat["tables"] == [env.table] and beat["deadletters"] == 0


def test_a_lasting_duplicate_on_a_unique_key_is_retried_then_dead_lettered(reverse_env: Any) -> None:
    env: ReverseEnv = reverse_env(ITEMS, "items", exclude=["secret"])
    env.put(values(1, email="same@x.io"))
    env.put(values(2, email="same@x.io"))  # DynamoDB has no unique keys; MySQL refuses the second
    with env.reverse(retry_s=0.3) as rev:
        drain(rev)
        assert rev.metrics.retries.labels("duplicate_key")._value.get() >= 1
    assert heartbeat(env)["deadletter_keys"] == [f"{env.db}.items id=2"]
    assert env.mysql_row(1) is not None and env.mysql_row(2) is None


def test_a_column_added_to_mysql_after_start_up_is_read_again_not_dead_lettered(reverse_env: Any) -> None:
    env: ReverseEnv = reverse_env(ITEMS, "items", exclude=["secret"])
    with env.reverse() as rev:
        drain(rev)
        with env.admin.cursor() as cur:  # what a migration adds while phase 5 runs
            cur.execute("ALTER TABLE items ADD COLUMN nickname VARCHAR(20) NULL")
        env.put(values(8), nickname={"S": "added later"})
        drain(rev)
        assert heartbeat(env)["deadletters"] == 0
    row = env.mysql_row(8)
    assert row is not None and row["nickname"] == "added later"

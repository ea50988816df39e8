"""Rows keyed by other columns than their primary key, moved between items in phase 5, on the
real stack: the two halves of a move (a tombstone at the old item, the row at the new one, one
version) reach MySQL through two items' stream records in no particular order, split across
pages; MySQL must end with every row's newest state (the sink's versions table)."""

from __future__ import annotations

import datetime as dt
import random
import time
from typing import Any

import pytest

from consumers.reverse.order import row_digest
from replicator.mapping import ORIGIN_APP
from replicator.mapping.conditional import metadata
from replicator.mapping.names import DELETED_ATTR, TTL_ATTR
from tests.consumers.reverse.conftest import ReverseEnv, drain

pytestmark = pytest.mark.integration

ORDERS = ("CREATE TABLE orders (id INT PRIMARY KEY, user_id INT NOT NULL, day DATE NOT NULL, "
          "n INT NOT NULL)")
KEY = {"pk": "USER#{user_id}", "sk": "ORDER#{day:%Y-%m-%d}#{id:06d}"}


def put(env: ReverseEnv, row: dict[str, Any], version: int) -> None:
    item = env.mapper.to_item(env.item_row(row), metadata=metadata(version, ORIGIN_APP))
    env.dynamodb.put_item(TableName=env.table, Item=item)


def tombstone(env: ReverseEnv, row: dict[str, Any], version: int) -> None:
    item: dict[str, Any] = dict(env.mapper.key(env.item_row(row)))
    item.update(metadata(version, ORIGIN_APP, env.mapper.table))
    item[DELETED_ATTR] = {"BOOL": True}
    item[TTL_ATTR] = {"N": str(int(time.time()) + 3600)}
    env.dynamodb.put_item(TableName=env.table, Item=item)


def test_moved_rows_end_in_their_newest_state_whatever_order_their_halves_arrive_in(reverse_env: Any) -> None:
    env: ReverseEnv = reverse_env(ORDERS, "orders", key=KEY)
    rng = random.Random(20261127)
    rows: dict[int, dict[str, Any] | None] = {}
    for i in range(1, 41):
        rows[i] = {"id": i, "user_id": rng.randrange(1, 6), "day": dt.date(2026, 11, rng.randrange(1, 28)),
                   "n": 0}
        put(env, rows[i], env.version())
    late_halves = 0
    for step in range(1, 121):
        i = rng.randrange(1, 41)
        old = rows[i]
        version = env.version()
        if old is None:  # re-inserted, at a new item
            rows[i] = {"id": i, "user_id": rng.randrange(1, 6), "day": dt.date(2026, 12, 1), "n": step}
            put(env, rows[i], version)
        elif rng.random() < 0.15:
            tombstone(env, old, version)
            rows[i] = None
        else:  # a move: another user or another day, and a new n
            new = {**old, "n": step}
            if rng.random() < 0.6:
                new["user_id"] = old["user_id"] % 5 + 1
            else:
                new["day"] = old["day"] + dt.timedelta(days=1)
            if rng.random() < 0.5:  # the row at its new item first, the tombstone of the old after it
                put(env, new, version)
                tombstone(env, old, version)
                late_halves += 1
            else:
                tombstone(env, old, version)
                put(env, new, version)
            rows[i] = new
    assert late_halves > 20
    with env.reverse(page_size=3) as rev:  # pages of 3 records: halves often in different pages
        drain(rev)
        superseded = rev.metrics.superseded._value.get()
    expected = {f"id={i}": r for i, r in rows.items() if r is not None}
    got = {k: {**r} for k, r in env.mysql_rows().items()}
    assert {k: (r["user_id"], r["n"]) for k, r in got.items()} == {
        k: (r["user_id"], r["n"]) for k, r in expected.items()}
    assert env.mysql_rows() == env.dynamodb_rows()
    assert superseded > 0  # late tombstones in a later page than their upsert: not written
    with env.admin.cursor() as cur:  # one version row per row ever written, the newest stamp
        cur.execute("SELECT COUNT(*) FROM replicator.reverse_versions WHERE source_table = %s",
                    (f"{env.db}.orders",))
        assert cur.fetchone()[0] == 40
        cur.execute("SELECT op_rank FROM replicator.reverse_versions WHERE row_digest = %s",
                    (row_digest(f"{env.db}.orders", (next(i for i, r in rows.items() if r is None),)),))
        assert cur.fetchone()[0] == 0  # a deleted row keeps its version: a late upsert cannot revive it

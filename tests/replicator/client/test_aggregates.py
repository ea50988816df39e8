"""The client answers aggregates alike from both stores (issue 12), on the real stack.

The workshop's single-table model — users and orders in one DynamoDB table, each order's items
embedded in its item — behind the real reader and writer. Through phases 2, 3 and 4 the same
calls give the same answers in PyMySQL's types: an order with its items (``include=``: SELECTs
on MySQL, one GetItem on DynamoDB), an embedded item by its key, and the user's collection
(the user with their orders: SELECTs on MySQL, one Query on DynamoDB) in sort-key order. Phase 3
compares every row of them and finds nothing; phase 4 serves them from DynamoDB (no fallback).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from replicator.client import Client, connect
from replicator.control import ControlStore, HistoryEntry, PhaseState, open_control_store
from replicator.control.watermark import PipelineWatermark
from replicator.demo.processes import Pipeline
from replicator.settings import Settings, load_settings
from tests.replicator.client.conftest import create_database

pytestmark = pytest.mark.integration

SCHEMA = (
    "CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(120) NOT NULL UNIQUE, name VARCHAR(80))",
    "CREATE TABLE orders (id BIGINT PRIMARY KEY, user_id INT NOT NULL, total DECIMAL(10,2) NOT NULL, "
    "created_at DATETIME(6) NOT NULL)",
    "CREATE TABLE order_items (id INT PRIMARY KEY, order_id BIGINT NOT NULL, user_id INT NOT NULL, "
    "sku VARCHAR(20) NOT NULL, qty INT NOT NULL)",
)


def model(db: str) -> list[dict[str, Any]]:
    return [
        {"source": f"{db}.users", "target": "shop", "key": {"pk": "USER#{id}", "sk": "#META"},
         "collections": [{"name": "collection", "members": {f"{db}.orders": {"user_id": "id"}}}]},
        {"source": f"{db}.orders", "target": "shop",
         "key": {"pk": "USER#{user_id}", "sk": "ORDER#{id:010d}"}},
        {"source": f"{db}.order_items", "embed": {"parent": f"{db}.orders", "as": "items",
                                                   "on": {"order_id": "id", "user_id": "user_id"}}},
    ]


class Env:
    def __init__(self, settings: Settings, db: str, client: Client, store: ControlStore) -> None:
        self.settings, self.db, self.client, self.store = settings, db, client, store

    def phase(self, n: int) -> None:
        cur = self.store.get_phase()
        if cur.phase != n:
            self.store.compare_and_set(
                PhaseState(phase=n, epoch=cur.epoch + 1, updated_at=time.time(), updated_by="test",
                           reason="test", generation=cur.generation),
                HistoryEntry(epoch=cur.epoch + 1, at=time.time(), actor="test", from_phase=cur.phase,
                             to_phase=n, reason="test"))
        deadline = time.monotonic() + 10
        while self.client.phase.phase != n:
            assert time.monotonic() < deadline, f"the client did not follow phase {n}"
            time.sleep(0.02)

    def applied(self, timeout_s: float = 60) -> bool:
        """Until the reader streams past everything committed so far, and the writer applied it."""
        position = self.client.mysql.current_position()
        return PipelineWatermark(self.store, self.settings).wait_applied(
            [t.source for t in self.settings.tables], gtid=position, timeout_s=timeout_s)

    def metric(self, name: str, **labels: str) -> float:
        return self.client.metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture(scope="module")
def env(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    unique, admin = create_database(stack_env, "a", SCHEMA)
    user = stack_env.get("STACK_MYSQL_ADMIN_USER", "admin")
    password = stack_env.get("STACK_MYSQL_ADMIN_PASSWORD", "")
    settings = load_settings(
        kafka={"topic_prefix": unique, "partitions": 2},
        dynamodb={"table_prefix": f"{unique}-", "streams": False},
        control={"namespace": unique}, tables=model(unique), log={"level": "warning"},
        client={"mysql_user": user, "mysql_password": password}, validation={"recheck_wait_s": 3.0},
        cutover={"fence_table": f"{unique}_fence.fence", "mysql_user": user, "mysql_password": password})
    pipeline = Pipeline(settings, unique, Path(tmp_path_factory.mktemp("aggregates")))
    pipeline.write_config()
    pipeline.spawn("writer", "write", "--create-tables")
    pipeline.spawn("reader", "run")
    store = open_control_store(settings)
    store.start()
    client = None
    try:
        from replicator.adapters.dynamodb import dynamodb_client

        ddb = dynamodb_client(settings.dynamodb)
        deadline = time.monotonic() + 90
        while f"{unique}-shop" not in ddb.list_tables(Limit=100)["TableNames"]:
            assert time.monotonic() < deadline, f"the writer did not create its table; see {pipeline.logs}"
            time.sleep(0.5)
        client = connect(settings, name="aggregates")
        e = Env(settings, unique, client, store)
        e.phase(2)
        assert e.applied(timeout_s=90), f"the pipeline did not start; see {pipeline.logs}"
        yield e
    finally:
        if client is not None:
            client.close()
        pipeline.stop()
        store.close()
        from replicator.demo.cleanup import remove_demo_resources

        admin_cfg = settings.mysql.model_copy(update={"user": user, "password": SecretStr(password)})
        remove_demo_resources(settings, admin_cfg, unique)
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{unique}_fence`")
        admin.close()


def test_an_order_with_its_items_and_a_users_collection_read_alike_in_phases_2_3_and_4(env: Env) -> None:
    c, db = env.client, env.db
    users, orders, items = c.table(f"{db}.users"), c.table(f"{db}.orders"), c.table(f"{db}.order_items")
    at = dt.datetime(2026, 11, 27, 10, 0, 0, 250000)
    with c.transaction() as tx:
        tx.table(f"{db}.users").insert({"id": 1, "email": "ada@x", "name": "Ada"})
        tx.table(f"{db}.users").insert({"id": 2, "email": "bob@x", "name": "Bob"})
        for oid, uid, total in ((12, 1, "9.90"), (7, 1, "120.00"), (30, 2, "1.00")):
            tx.table(f"{db}.orders").insert({"id": oid, "user_id": uid, "total": Decimal(total),
                                             "created_at": at})
        for iid, oid, uid, sku in ((103, 7, 1, "c"), (101, 7, 1, "a"), (102, 12, 1, "b"), (110, 7, 1, "d")):
            tx.table(f"{db}.order_items").insert({"id": iid, "order_id": oid, "user_id": uid, "sku": sku,
                                                  "qty": 2})
    items.delete({"id": 110, "order_id": 7, "user_id": 1})  # a child deleted: gone from the aggregate
    assert env.applied(), "the pipeline did not apply the writes"

    expected_order = {"id": 7, "user_id": 1, "total": Decimal("120.00"), "created_at": at, "items": [
        {"id": 101, "order_id": 7, "user_id": 1, "sku": "a", "qty": 2},
        {"id": 103, "order_id": 7, "user_id": 1, "sku": "c", "qty": 2}]}
    expected_collection = [{"id": 1, "email": "ada@x", "name": "Ada", "orders": [
        {"id": 7, "user_id": 1, "total": Decimal("120.00"), "created_at": at},
        {"id": 12, "user_id": 1, "total": Decimal("9.90"), "created_at": at}]}]
    for phase in (2, 3, 4):
        env.phase(phase)
        # the order's key template reads user_id: a key that gives it finds the item in DynamoDB
        assert orders.get({"id": 7, "user_id": 1}, include=["items"]) == expected_order, phase
        assert orders.get({"id": 99, "user_id": 1}, include=["items"]) is None, phase
        assert items.get({"id": 102, "order_id": 12, "user_id": 1}) == {
            "id": 102, "order_id": 12, "user_id": 1, "sku": "b", "qty": 2}, phase
        assert items.get({"id": 110, "order_id": 7, "user_id": 1}) is None, phase
        assert users.query("collection", {"id": 1}) == expected_collection, phase
        assert users.query("collection", {"id": 3}) == [], phase
    assert env.metric("replicator_client_validations_total", outcome="passed") > 0
    assert env.metric("replicator_client_validations_total", outcome="failed") == 0
    for reason in ("dynamodb_error", "read_your_writes"):
        assert env.metric("replicator_client_fallbacks_total", reason=reason) == 0, reason

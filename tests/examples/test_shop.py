"""The shop on the real stack: its HTTP API in phase 1 and phase 4, its errors, and a load across phases.

One shop for the module: a database with the demo schema and a few seeded rows, mapped like the
demo's (one DynamoDB table: users with their orders as a collection, order items embedded in
their order), the real reader and writer (``replicator run`` / ``replicator write
--create-tables``), a client as the shop's own MySQL user and the service on a free port. The
reader starts from the binlog position before the seed, so the seed reaches DynamoDB by the
stream (no backfill needed). Phases move through the controller like an operator would (one
step at a time, gates forced and audited: the soak windows are the guide's days).
"""

from __future__ import annotations

import http.client
import json
import random
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from examples.shop import ShopServer, serve
from examples.shop.load import LoadGenerator
from examples.shop.server import PHASE_HEADER
from replicator.adapters import mysql
from replicator.adapters.dynamodb import dynamodb_client
from replicator.client import Client, connect
from replicator.control import open_control_store
from replicator.control.watermark import PipelineWatermark
from replicator.demo.cleanup import remove_demo_resources
from replicator.demo.processes import Pipeline
from replicator.demo.story import shop_tables
from replicator.demo.workload import MySQLExecutor, ShopWorkload, create_app_user, create_schema, seed
from replicator.phase import open_phase_controller
from replicator.settings import Settings, load_settings

pytestmark = pytest.mark.integration

SEEDED_USERS = 20
LINE = {"sku": "A", "qty": 1, "price": "4.00"}


@dataclass
class Shop:
    settings: Settings
    db: str
    client: Client
    server: ShopServer
    admin: Any  # an admin connection (autocommit)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any], int]:
        """``(status, JSON body, phase the service answered under)``."""
        host, port = self.server.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            conn.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        assert b"Traceback" not in data
        return resp.status, json.loads(data) if data else {}, int(resp.getheader(PHASE_HEADER, "0"))

    def phase(self, n: int, timeout_s: float = 10.0) -> None:
        """Move to phase ``n`` one step at a time (forced gates, audited) and wait for the client."""
        with open_phase_controller(self.settings) as ctl:
            current = ctl.get_state().phase
            for step in (range(current + 1, n + 1) if n > current else [n]):
                ctl.set_migration_phase(step, reason="test", actor="test", force=True)
        deadline = time.monotonic() + timeout_s
        while self.client.phase.phase != n:
            assert time.monotonic() < deadline, f"the client did not follow phase {n}"
            time.sleep(0.02)

    def applied(self, timeout_s: float = 60.0) -> None:
        """Wait until the pipeline has applied everything MySQL has committed so far."""
        with self.admin.cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            position = str(cur.fetchone()[0])
        with open_control_store(self.settings) as store:
            sources = [t.source for t in self.settings.tables]
            assert PipelineWatermark(store, self.settings).wait_applied(sources, gtid=position,
                                                                        timeout_s=timeout_s)


@pytest.fixture(scope="module")
def shop(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    with pytest.MonkeyPatch.context() as env:  # the stack's endpoints, for the settings and the processes
        for key, value in stack_env.items():
            env.setenv(key, value)
        yield from _shop(stack_env, tmp_path_factory)


def _shop(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    unique = "s" + uuid.uuid4().hex[:10]
    app_user, app_password = f"{unique}_app", secrets.token_urlsafe(18)
    settings = load_settings(
        mysql={"server_id": 8_000_000 + uuid.uuid4().int % 1_000_000},  # no other reader's
        kafka={"topic_prefix": unique, "partitions": 2}, dynamodb={"table_prefix": f"{unique}-"},
        control={"namespace": unique}, cutover={"fence_table": f"{unique}.fence"},  # the shop's user reads it
        tables=shop_tables(unique),
        client={"mysql_user": app_user, "mysql_password": app_password, "read_your_writes_wait_s": 2.0},
        log={"level": "warning"})
    admin_cfg = settings.mysql.model_copy(update={
        "user": stack_env.get("STACK_MYSQL_ADMIN_USER", "admin"),
        "password": SecretStr(stack_env.get("STACK_MYSQL_ADMIN_PASSWORD", ""))})
    admin = mysql.connect(admin_cfg)
    pipeline = Pipeline(settings, unique, Path(tmp_path_factory.mktemp("shop-pipeline")))
    client = server = None
    try:
        executor = MySQLExecutor(admin)
        create_schema(admin, unique)
        create_app_user(admin, unique, app_user, app_password, fence_table=settings.cutover.fence_table)
        head = executor.binlog_head()
        executor.apply_many(seed(SEEDED_USERS))
        pipeline.write_config()
        pipeline.spawn("writer", "write", "--create-tables")
        pipeline.spawn("reader", "run", "--from", f"{head[0]}:{head[1]}")
        _wait_for_tables(settings, timeout_s=90)
        client = connect(settings, name="shop-test")
        server = serve(client)
        yield Shop(settings, unique, client, server, admin)
    finally:
        if server is not None:
            server.stop()
        if client is not None:
            client.close()
        pipeline.stop()
        assert not remove_demo_resources(settings, admin_cfg, unique, users=[app_user])
        admin.close()


def _wait_for_tables(settings: Settings, timeout_s: float) -> None:
    ddb = dynamodb_client(settings.dynamodb)
    wanted = {settings.dynamodb.table_prefix + "shop"}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if wanted <= set(ddb.list_tables(Limit=100)["TableNames"]):
            described = [ddb.describe_table(TableName=n)["Table"] for n in wanted]
            if all(t["TableStatus"] == "ACTIVE" and all(i["IndexStatus"] == "ACTIVE"
                                                        for i in t.get("GlobalSecondaryIndexes", []))
                   for t in described):
                return
        time.sleep(0.5)
    raise AssertionError(f"the writer did not create {sorted(wanted)} within {timeout_s} s")


# --------------------------------------------------------------------------- the API per phase


def test_the_api_gives_the_same_answers_in_phase_1_and_phase_4(shop: Shop) -> None:
    shop.phase(1)
    ada = {"id": 501, "email": "ada@shop.test", "name": "Ada", "password": "pw", "balance": "100.00",
           "profile": {"tier": "gold"}}
    assert shop.call("POST", "/users", ada)[:2] == (201, {"id": 501})
    assert shop.call("PATCH", "/users/501", {"name": "Ada L."})[0] == 200
    lines = [{"sku": "PEN", "qty": 2, "price": "3.00"}, {"sku": "INK", "qty": 1, "price": "6.50"}]
    for oid, items in ((9001, lines), (9002, [{"sku": "PAD", "qty": 1, "price": "7.25"}])):
        status, body, _ = shop.call("POST", "/orders", {"id": oid, "user_id": 501, "items": items})
        assert status == 201 and (body["order"]["id"], body["order"]["items"]) == (oid, len(items))
    assert shop.call("POST", "/users", {"id": 502, "email": "gone@shop.test", "password": "pw"})[0] == 201
    assert shop.call("DELETE", "/users/502")[0] == 200
    assert shop.call("POST", "/users", {"id": 503, "email": "new@shop.test", "password": "pw"})[0] == 201
    reads = ["/users/501", "/users/501/orders", "/users/501/orders?limit=1", "/users/503",
             "/users/503/orders", "/users/501/orders/9001", "/users/501/orders/9002"]
    in_phase_1 = {path: shop.call("GET", path) for path in reads}
    assert all(status == 200 and phase == 1 for status, _, phase in in_phase_1.values())
    user = in_phase_1["/users/501"][1]["user"]
    assert (user["name"], user["balance"], user["profile"]) == ("Ada L.", "80.25", {"tier": "gold"})
    assert "password_hash" not in user
    assert [o["id"] for o in in_phase_1["/users/501/orders"][1]["orders"]] == [9002, 9001]  # newest first
    order = in_phase_1["/users/501/orders/9001"][1]["order"]
    assert (order["total"], [(i["id"], i["sku"], i["qty"], i["price"]) for i in order["items"]]) == (
        "12.50", [(900101, "PEN", 2, "3.00"), (900102, "INK", 1, "6.50")])
    assert shop.call("GET", "/users/502")[0] == 404
    assert shop.call("GET", "/users/503/orders/9001")[0] == 404  # another user's order

    shop.phase(2)  # the writer applies nothing in phase 1 (DynamoDB is no write target there)
    shop.applied()
    shop.phase(4)
    before = _dynamodb_reads(shop.client)
    in_phase_4 = {path: shop.call("GET", path) for path in reads}
    assert {p: (s, b) for p, (s, b, _) in in_phase_4.items()} == {
        p: (s, b) for p, (s, b, _) in in_phase_1.items()}
    assert all(phase == 4 for _, _, phase in in_phase_4.values())
    assert _dynamodb_reads(shop.client) - before >= len(reads)  # served by DynamoDB, not MySQL
    assert shop.call("GET", "/users/502")[0] == 404

    # Writes in phase 4 go to MySQL; the client reads its own writes back from DynamoDB.
    assert shop.call("PATCH", "/users/501", {"name": "Ada Lovelace"})[0] == 200
    assert shop.call("POST", "/orders", {"id": 9003, "user_id": 501, "total": "0.25"})[0] == 201
    assert shop.call("GET", "/users/501")[1]["user"]["name"] == "Ada Lovelace"
    assert shop.call("GET", "/users/501")[1]["user"]["balance"] == "80.00"
    assert [o["id"] for o in shop.call("GET", "/users/501/orders")[1]["orders"]] == [9003, 9002, 9001]


@pytest.mark.parametrize("phase", [1, 4])
def test_bad_input_duplicates_and_missing_rows_are_400_409_404_in_json(shop: Shop, phase: int) -> None:
    shop.phase(phase)
    if shop.call("GET", "/users/501")[0] == 404:
        assert shop.call("POST", "/users", {"id": 501, "email": "ada@shop.test", "password": "pw"})[0] == 201
    uid = 600 + phase
    assert shop.call("POST", "/users", {"id": uid, "email": f"u{uid}@shop.test", "password": "pw"})[0] == 201
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/users", {"id": uid, "email": "again@shop.test", "password": "pw"}, 409, "duplicate"),
        ("PATCH", f"/users/{uid}", {"id": 501}, 409, "duplicate"),
        ("POST", "/orders", {"id": 1, "user_id": uid, "total": "1.00"}, 409, "duplicate"),
        ("POST", "/users", {"email": 5, "password": "pw"}, 400, "bad_request"),         # UnmappableValueError
        ("POST", "/users", {"email": "x" * 200, "password": "pw"}, 400, "bad_request"),  # MySQL refuses it
        ("POST", "/users", {"email": "a@b.c"}, 400, "bad_request"),                      # no password
        ("POST", "/users", {"email": "a@b.c", "password": "pw", "admin": True}, 400, "bad_request"),
        ("PATCH", f"/users/{uid}", {"name": 12}, 400, "bad_request"),
        ("POST", "/orders", {"user_id": uid, "total": "-3"}, 400, "bad_request"),
        ("POST", "/orders", {"user_id": uid, "total": "5.00", "items": [LINE]}, 400, "bad_request"),  # sum
        ("POST", "/orders", {"user_id": uid, "items": [{**LINE, "qty": 0}]}, 400, "bad_request"),
        ("POST", "/orders", {"id": 10**12, "user_id": uid, "total": "1.00"}, 400, "bad_request"),
        ("GET", "/users/x1", None, 400, "bad_request"),
        ("GET", "/users/999999", None, 404, "not_found"),
        ("PATCH", "/users/999999", {"name": "nobody"}, 404, "not_found"),
        ("DELETE", "/users/999999", None, 404, "not_found"),
        ("POST", "/orders", {"user_id": 999999, "total": "1.00"}, 404, "not_found"),
    ]
    for method, path, body, status, code in cases:
        got, answer, answered_in = shop.call(method, path, body)
        assert (got, answer.get("error"), answered_in) == (status, code, phase), (method, path, body, answer)
        assert answer["message"]
    # A refused order wrote nothing: the balance is untouched.
    assert shop.call("GET", f"/users/{uid}")[1]["user"]["balance"] == "0.00"


def test_health_reports_the_clients_phase_and_epoch(shop: Shop) -> None:
    shop.phase(2)
    status, body, _ = shop.call("GET", "/health")
    state = shop.client.phase
    assert status == 200 and (body["phase"], body["epoch"]) == (2, state.epoch) and state.epoch > 0
    assert body["flags"]["dual_write_enabled"] is True and body["flags"]["read_from_dynamodb"] is False


# --------------------------------------------------------------------------- load across phase changes


def test_a_load_sees_no_errors_across_phases_2_3_4_3(shop: Shop) -> None:
    shop.phase(2)
    shop.applied()
    gen = LoadGenerator(shop.server.url, threads=6, rate=60,
                        workload=ShopWorkload(random.Random(5), SEEDED_USERS + 1), seed=5)
    gen.start()
    try:
        for phase in (2, 3, 4, 3):
            shop.phase(phase)
            time.sleep(2.5)
    finally:
        gen.stop()
    report = gen.report()
    visits = [v for v in report.visits if v.requests]
    assert [v.phase for v in visits] == [2, 3, 4, 3], report.format()
    assert report.errors == 0, report.format()
    assert all(v.reads and v.writes for v in visits), report.format()
    assert report.changes > 0


def _dynamodb_reads(client: Client) -> float:
    return sum(v or 0.0 for v in (
        client.metrics.registry.get_sample_value("replicator_client_read_seconds_count",
                                                 {"store": "dynamodb", "op": op}) for op in ("get", "query")))


"""One shop on the real stack for the client's integration tests, shared by the package.

A MySQL database with ``users`` and ``orders``, the real binlog reader and DynamoDB writer
running as processes (``replicator run`` / ``replicator write --create-tables``), and a
started :class:`~replicator.client.Client`. Starting the pipeline costs seconds, so it is set
up once for the package; each test namespaces its rows by key range and sets the phase it
needs (``shop.phase(n)``).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from replicator.client import Client, connect
from replicator.control import ControlStore, HistoryEntry, PhaseState, open_control_store
from replicator.control.watermark import PipelineWatermark
from replicator.demo.processes import Pipeline
from replicator.phase.switch import SwitchProtocol
from replicator.phase.switch_io import StoreDrains, StoreFences
from replicator.settings import Settings, load_settings
from tests.conftest import admin_connect

SCHEMA = (
    """CREATE TABLE users (
         id INT PRIMARY KEY AUTO_INCREMENT,
         email VARCHAR(120) NOT NULL,
         name VARCHAR(80) NULL,
         country CHAR(2) NULL,
         balance DECIMAL(12,2) NOT NULL DEFAULT 0,
         created_at DATETIME(6) NOT NULL,
         seen_at TIMESTAMP(3) NULL,
         avatar VARBINARY(64) NULL,
         prefs JSON NULL,
         UNIQUE KEY (email), KEY (country, created_at))""",
    """CREATE TABLE orders (
         id BIGINT PRIMARY KEY,
         user_id INT NOT NULL,
         total DECIMAL(10,2) NOT NULL,
         status ENUM('new','paid','shipped') NOT NULL,
         created_at DATETIME(6) NOT NULL,
         KEY (user_id, created_at))""",
)


def tables(db: str) -> list[dict[str, Any]]:
    return [
        {"source": f"{db}.users", "target": "users",
         "indexes": [{"name": "by_email", "pk": "email"},
                     {"name": "by_country", "pk": "country", "sk": "created_at"}]},
        {"source": f"{db}.orders", "target": "orders",
         "indexes": [{"name": "by_user", "pk": "user_id", "sk": "created_at"}]},
    ]


@dataclass
class Shop:
    settings: Settings
    db: str
    client: Client
    store: ControlStore
    pipeline: Pipeline
    admin: Any
    keys: dict[str, int] = field(default_factory=lambda: {"n": 1000})

    @property
    def users(self) -> str:
        return f"{self.db}.users"

    @property
    def orders(self) -> str:
        return f"{self.db}.orders"

    def switch(self) -> SwitchProtocol:
        return SwitchProtocol(self.store, StoreFences(self.settings), StoreDrains(self.settings, self.store),
                              max_pause_s=self.settings.cutover.max_write_pause_s)

    def phase(self, n: int, *, timeout_s: float = 10.0) -> None:
        """Move to phase ``n`` and wait until the client follows; 4 <-> 5 on the real switch
        protocol (fences, drains; the reverse replication runs for the way back)."""
        cur = self.store.get_phase()
        if cur.phase == 5 and n < 5:  # the protocol freezes writes, then waits for the reverse drain
            self.switch().run(4, actor="test", reason="test")
        if n == 5 and self.store.get_phase().phase != 5:
            self._set(4)
            for t in self.settings.tables:  # the 4 -> 5 lag gate: the pipeline has caught up
                assert self.applied(t.source, timeout_s=60), f"the pipeline lags; see {self.pipeline.logs}"
            self.switch().run(5, actor="test", reason="test")
        else:
            self._set(n)
        deadline = time.monotonic() + timeout_s
        while self.client.phase.phase != n or self.client.phase.frozen:
            assert time.monotonic() < deadline, f"the client did not follow phase {n} within {timeout_s} s"
            time.sleep(0.02)

    def reverse_caught_up(self, timeout_s: float = 60.0) -> None:
        """Until the reverse replication has caught up once after now (its heartbeat says so)."""
        since = time.time()
        deadline = time.monotonic() + timeout_s
        while True:
            beat = self.store.get_marker("reverse.heartbeat") or {}
            if float(beat.get("caught_up_at", 0)) > since:
                return
            assert time.monotonic() < deadline, f"reverse replication not caught up; see {self.pipeline.logs}"
            time.sleep(0.1)

    def _set(self, n: int) -> None:
        cur = self.store.get_phase()
        if cur.phase == n:
            return
        self.store.compare_and_set(
            PhaseState(phase=n, epoch=cur.epoch + 1, updated_at=time.time(), updated_by="test",
                       reason="test", generation=cur.generation),
            HistoryEntry(epoch=cur.epoch + 1, at=time.time(), actor="test", from_phase=cur.phase,
                         to_phase=n, reason="test"))

    def next_ids(self, n: int) -> list[int]:
        start = self.keys["n"]
        self.keys["n"] += n
        return list(range(start, start + n))

    def user(self, uid: int, **over: Any) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": uid, "email": f"u{uid}@example.com", "name": f"User {uid}", "country": "FR",
            "balance": Decimal("10.50"), "created_at": dt.datetime(2024, 1, 1, 12, 0, 0, uid % 1000),
            "seen_at": dt.datetime(2024, 2, 1, 8, 30, 0, 123000), "avatar": b"\x00\x01\xff",
            "prefs": '{"lang": "fr"}',
        }
        row.update(over)
        return row

    def mysql_row(self, table: str, key: int) -> dict[str, Any] | None:
        with self.admin.cursor() as cur:
            cur.execute(f"SELECT * FROM `{self.db}`.`{table}` WHERE id = %s", (key,))
            names = [d[0] for d in cur.description]
            row = cur.fetchone()
        return None if row is None else dict(zip(names, row, strict=True))

    def applied(self, source: str, timeout_s: float = 30.0) -> bool:
        """Wait until the pipeline has applied everything MySQL has committed so far."""
        with self.admin.cursor() as cur:
            cur.execute("SELECT @@gtid_binlog_pos")
            position = str(cur.fetchone()[0])
        return PipelineWatermark(self.store, self.settings).wait_applied(
            [source], gtid=position, timeout_s=timeout_s)


def create_database(stack_env: dict[str, str], letter: str, schema: Sequence[str]) -> tuple[str, Any]:
    """A new database (named ``<letter><random>``) with ``schema``; its name and an admin connection."""
    unique = letter + uuid.uuid4().hex[:10]
    admin = admin_connect(stack_env)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{unique}` CHARACTER SET utf8mb4")
        cur.execute(f"USE `{unique}`")
        for ddl in schema:
            cur.execute(ddl)
    return unique, admin


@contextmanager
def open_shop(stack_env: dict[str, str], workdir: Path, schema: Sequence[str] = SCHEMA,
              mapping: Callable[[str], list[dict[str, Any]]] = tables, letter: str = "c") -> Iterator[Shop]:
    """A shop on its own database: the pipeline, the reverse replication and a client, in phase 2."""
    unique, admin = create_database(stack_env, letter, schema)
    settings = load_settings(
        kafka={"topic_prefix": unique, "partitions": 2},
        dynamodb={"table_prefix": f"{unique}-", "streams": True},
        control={"namespace": unique}, tables=mapping(unique),
        client={"mysql_user": stack_env.get("STACK_MYSQL_ADMIN_USER", "admin"),
                "mysql_password": stack_env.get("STACK_MYSQL_ADMIN_PASSWORD", ""),
                "read_your_writes_wait_s": 2.0},
        validation={"recheck_wait_s": 3.0}, log={"level": "warning"},
        cutover={"fence_table": f"{unique}_fence.fence", "max_write_pause_s": 10.0,
                 "reverse_versions_table": f"{unique}_fence.reverse_versions",
                 "mysql_user": stack_env.get("STACK_MYSQL_ADMIN_USER", "admin"),
                 "mysql_password": stack_env.get("STACK_MYSQL_ADMIN_PASSWORD", "")})
    pipeline = Pipeline(settings, unique, workdir)
    pipeline.write_config()
    pipeline.spawn("writer", "write", "--create-tables")
    pipeline.spawn("reader", "run")
    store = open_control_store(settings)
    store.start()
    client = None
    try:
        _wait_for_tables(settings, timeout_s=90)
        client = connect(settings, name="tests")
        shop = Shop(settings, unique, client, store, pipeline, admin_connect(stack_env, unique))
        pipeline.spawn("reverse", "reverse")  # the streams exist once the writer created the tables
        deadline = time.monotonic() + 60
        while store.get_marker("reverse.heartbeat") is None:
            assert time.monotonic() < deadline, f"replicator reverse did not start; see {pipeline.logs}"
            time.sleep(0.2)
        shop.phase(2)
        assert shop.applied(shop.users, timeout_s=90), f"the pipeline did not start; see {pipeline.logs}"
        yield shop
    finally:
        if client is not None:
            client.close()
        pipeline.stop()
        store.close()
        from replicator.demo.cleanup import remove_demo_resources

        admin_cfg = settings.mysql.model_copy(update={
            "user": stack_env.get("STACK_MYSQL_ADMIN_USER", "admin"),
            "password": SecretStr(stack_env.get("STACK_MYSQL_ADMIN_PASSWORD", ""))})
        assert not remove_demo_resources(settings, admin_cfg, unique)
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{unique}_fence`")
        admin.close()


@pytest.fixture(scope="package")
def shop(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    with open_shop(stack_env, Path(tmp_path_factory.mktemp("client-pipeline"))) as shop:
        yield shop


def _wait_for_tables(settings: Settings, timeout_s: float) -> None:
    from replicator.adapters.dynamodb import dynamodb_client

    client = dynamodb_client(settings.dynamodb)
    wanted = {settings.dynamodb.table_prefix + t.target_name for t in settings.tables if t.embed is None}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        names = set(client.list_tables(Limit=100)["TableNames"])
        if wanted <= names and all(
                client.describe_table(TableName=n)["Table"]["TableStatus"] == "ACTIVE" for n in wanted):
            return
        time.sleep(0.5)
    raise AssertionError(f"the writer did not create {sorted(wanted)} within {timeout_s} s")

"""Fixtures for the writer's tests on the real stack: a MySQL table, its topic, a phase, events."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from replicator.control import ControlStore, HistoryEntry, PhaseState, open_control_store
from replicator.events import ChangeEvent, Position, TxInfo, schema_fingerprint
from replicator.mapping import TTL_ATTR
from replicator.settings import Settings, load_settings
from replicator.topics import table_topic

COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "int(11)"), ("name", "varchar(64)"), ("balance", "decimal(12,2)"), ("n", "int(11)"),
)
SCHEMA = schema_fingerprint(COLUMNS)
DDL = "CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(64), balance DECIMAL(12,2), n INT)"


def make_event(op: str, db: str, key: int, version: int, n: int = 0) -> ChangeEvent:
    """A change event of ``db.users`` as the reader would publish it."""
    from decimal import Decimal

    row: dict[str, Any] = {"id": key, "name": f"user-{key}-{n}", "balance": Decimal(n).scaleb(-2), "n": n}
    before = row if op in ("u", "d") else None
    after = row if op != "d" else None
    return ChangeEvent(op=op, db=db, table="users", pk={"id": key}, before=before, after=after,  # type: ignore[arg-type]
                       pos=Position("mysql-bin.000001", version), version=version,
                       ts_ms=int(time.time() * 1000), tx=TxInfo(f"tx{version}", 0), schema=SCHEMA,
                       columns=COLUMNS)


def random_stream(db: str, keys: int, events: int, seed: int, first_version: int = 1000) -> list[ChangeEvent]:
    """A plausible binlog: per key c, then u/d/c; versions strictly increase along the stream."""
    rng = random.Random(seed)
    alive: dict[int, bool] = {}
    out = []
    version = first_version
    for i in range(events):
        key = rng.randrange(keys)
        version += rng.randint(1, 50)
        op = ("d" if rng.random() < 0.15 else "u") if alive.get(key) else "c"
        alive[key] = op != "d"
        out.append(make_event(op, db, key, version, n=i))
    return out


def expected_table(events: list[ChangeEvent]) -> dict[int, tuple[int, bool, int | None]]:
    """key -> (version, tombstone, n) after applying ``events`` (the last per key wins)."""
    state: dict[int, tuple[int, bool, int | None]] = {}
    for e in events:
        key = int(e.pk["id"])  # type: ignore[arg-type]
        if key in state and state[key][0] >= e.version:
            continue
        state[key] = (e.version, e.op == "d", None if e.op == "d" else int(e.row["n"]))  # type: ignore[arg-type]
    return state


def scan(dynamodb: Any, table: str) -> dict[int, dict[str, Any]]:
    items: dict[int, dict[str, Any]] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            items[int(item["id"]["N"])] = item
    return items


def table_state(items: dict[int, dict[str, Any]]) -> dict[int, tuple[int, bool, int | None]]:
    return {k: (int(i["_version"]["N"]), "_deleted" in i, int(i["n"]["N"]) if "n" in i else None)
            for k, i in items.items()}


def without_ttl(items: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {k: {a: v for a, v in i.items() if a != TTL_ATTR} for k, i in items.items()}


def set_phase(store: ControlStore, phase: int) -> None:
    cur = store.get_phase()
    store.compare_and_set(
        PhaseState(phase=phase, epoch=cur.epoch + 1, updated_at=time.time(), updated_by="test",
                   reason="test"),
        HistoryEntry(epoch=cur.epoch + 1, at=time.time(), actor="test", from_phase=cur.phase,
                     to_phase=phase, reason="test"),
    )


@dataclass
class WriterEnv:
    settings: Settings
    db: str
    topic: str
    table: str  # DynamoDB table name
    control: ControlStore
    bootstrap: str
    produced: list[ChangeEvent] = field(default_factory=list)
    at_offset: dict[tuple[int, int], ChangeEvent] = field(default_factory=dict)  # (partition, offset)

    def produce(self, events: list[ChangeEvent], raw: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
        p = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True})
        for key, value in raw:
            p.produce(self.topic, key=key, value=value)
        for e in events:
            def delivered(err: Any, msg: Any, e: ChangeEvent = e) -> None:
                assert err is None, err
                self.at_offset[(msg.partition(), msg.offset())] = e

            p.produce(self.topic, key=e.key_bytes(), value=e.to_json(), on_delivery=delivered)
        assert p.flush(30) == 0
        self.produced.extend(events)


@pytest.fixture()
def writer_env(isolated_env: dict[str, str], mysql_admin: Any, mysql_db: str, unique: str,
               kafka_cleanup: None, dynamodb: Any, redis_client: Any) -> Iterator[WriterEnv]:
    with mysql_admin.cursor() as cur:
        cur.execute(DDL)
    settings = load_settings(tables=[{"source": f"{mysql_db}.users"}], log={"level": "warning"})
    topic = table_topic(settings.kafka.topic_prefix, f"{mysql_db}.users")
    bootstrap = isolated_env["REPLICATOR_KAFKA__BOOTSTRAP_SERVERS"]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)]).values():
        fut.result()
    with open_control_store(settings) as control:
        set_phase(control, 2)
        yield WriterEnv(settings, mysql_db, topic, f"{unique}-users", control, bootstrap)


RunUntil = Callable[..., Any]


class InProcessWriter:
    """The real writer (real Kafka, DynamoDB Local, Redis) driven step by step from the test."""

    def __init__(self, env: WriterEnv, client: Any = None, max_batch: int = 500) -> None:
        from consumers.writer.applier import make_client
        from consumers.writer.metrics import WriterMetrics
        from consumers.writer.runner import WriterOptions
        from consumers.writer.schema import load_schemas
        from consumers.writer.service import build_writer, check_mappings, start_writer
        from consumers.writer.tables import ensure_tables

        self.env = env
        self.client = client if client is not None else make_client(env.settings)
        ensure_tables(self.client, check_mappings(env.settings, load_schemas(env.settings)), create=True,
                      stream=False)
        self.metrics = WriterMetrics()
        self.writer = build_writer(env.settings, env.control, client=self.client, metrics=self.metrics,
                                   options=WriterOptions(phase_refresh_s=0.1, max_batch=max_batch))
        start_writer(self.writer)

    def run_until_consumed(self, total_events: int, limit_s: float = 120) -> None:
        """Step until the writer has consumed ``total_events`` in all (a safety limit, not a timing)."""
        give_up = time.monotonic() + limit_s
        while self.writer.totals.events < total_events:
            assert time.monotonic() < give_up, f"writer consumed {self.writer.totals.events}/{total_events}"
            self.writer.step()

    def close(self) -> None:
        from consumers.writer.service import close_writer

        close_writer(self.writer)


@pytest.fixture()
def in_process_writer(writer_env: WriterEnv) -> Iterator[Callable[..., InProcessWriter]]:
    made: list[InProcessWriter] = []

    def make(client: Any = None, max_batch: int = 500) -> InProcessWriter:
        w = InProcessWriter(writer_env, client, max_batch)
        made.append(w)
        return w

    yield make
    for w in made:
        w.close()

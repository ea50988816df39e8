"""Three fidelity defects found with data from other projects' test suites, each checked in the
stream path (the binlog reader) and in the backfill path, through the writer's own mapping into
DynamoDB Local (issue 15):

- a JSON integer beyond 64 bits, and digits a double drops, arrive exactly;
- a MariaDB ``UUID`` primary key (and ``INET6``/``INET4`` columns) are their text in both paths,
  so the stream's items fit the key schema ``replicator write --create-tables`` gives the table;
- a database, table and columns whose names hold what MySQL allows only quoted (non-ASCII,
  ``-``, spaces, a backtick) are accepted by the settings and quoted everywhere.

One module fixture: one table, its rows inserted while a reader streams them, then backfilled;
its stream (op ``c``) and snapshot (op ``r``) events are mapped with the writer's mapper cache and
put into the table the writer's start-up creates, and read back.
"""

from __future__ import annotations

import os
import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from replicator.events import ChangeEvent, JsonDoc
from replicator.settings import Settings, load_settings
from tests.conftest import admin_connect
from tests.replicator.reader.support import head, read_topic, running_reader, wait_caught_up

pytestmark = pytest.mark.integration

TABLE = "café-orders `q` №1"
KEY, DOC, IP6, IP4, NOTE = "order id", "doc-ü", "peer ip6", "peer-ip4", "naïve note"
ROWS = [
    ("6ccd780c-baba-1026-9564-5b8c656024db",
     '{"big": 18446744073709551616, "neg": -18446744073709551617, '
     '"pi": 3.14159265358979323846264338327950288, "plain": [1, 2.5, 0.1]}',
     "2001:db8::ff00:42:8329", "192.168.1.1", "first"),
    ("00000000-0000-7000-8000-000000000001", '[99999999999999999999999999999999999999]', "::ffff:1.2.3.4",
     "0.0.0.1", "second"),
]
EXPECTED_DOCS = {
    ROWS[0][0]: {"big": 18446744073709551616, "neg": -18446744073709551617,
                 "pi": Decimal("3.14159265358979323846264338327950288"), "plain": [1, 2.5, 0.1]},
    ROWS[1][0]: [99999999999999999999999999999999999999],
}


def q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


@dataclass
class Run:
    settings: Settings
    stream: list[ChangeEvent]
    snapshot: list[ChangeEvent]
    items: dict[tuple[str, str], dict[str, Any]]  # (op, key text) -> the item read back from DynamoDB


@pytest.fixture(scope="module")
def run(stack_env: dict[str, str]) -> Iterator[Run]:
    tag = "fd" + uuid.uuid4().hex[:8]
    db = f"{tag} ü-db"
    saved = dict(os.environ)
    os.environ.update({
        **stack_env, "REPLICATOR_KAFKA__TOPIC_PREFIX": tag, "REPLICATOR_CONTROL__NAMESPACE": tag,
        "REPLICATOR_DYNAMODB__TABLE_PREFIX": f"{tag}-", "REPLICATOR_DYNAMODB__STREAMS": "false",
        "REPLICATOR_MYSQL__SERVER_ID": str(random.randint(100_000, 4_000_000))})
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    conn = admin_connect(stack_env)
    client = None
    settings = load_settings(tables=[{"source": f"{db}.{TABLE}"}])
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {q(db)} CHARACTER SET utf8mb4")
            cur.execute(f"CREATE TABLE {q(db)}.{q(TABLE)} ({q(KEY)} UUID PRIMARY KEY, {q(DOC)} JSON, "
                        f"{q(IP6)} INET6, {q(IP4)} INET4, {q(NOTE)} VARCHAR(20))")
        with running_reader(settings) as reader, conn.cursor() as cur:
            wait_caught_up(reader, head(conn))
            for row in ROWS:
                cur.execute(f"INSERT INTO {q(db)}.{q(TABLE)} VALUES (%s, %s, %s, %s, %s)", row)
            wait_caught_up(reader, head(conn))
        stream = read_topic(settings, settings.tables[0].source, min_count=len(ROWS))

        from replicator.backfill.runner import Backfill, BackfillOptions

        results = Backfill(settings, BackfillOptions(wait_for_writer=False, max_rows_per_s=0),
                           stop=threading.Event()).run()
        assert [(p.done, p.error) for p in results] == [(len(ROWS), None)]
        events = read_topic(settings, settings.tables[0].source, min_count=2 * len(ROWS))
        snapshot = [e for e in events if e.op == "r"]

        from consumers.writer.applier import make_client
        from consumers.writer.batch import MapperCache
        from consumers.writer.schema import load_schemas
        from consumers.writer.service import check_mappings
        from consumers.writer.tables import ensure_tables

        schemas = load_schemas(settings)
        specs = check_mappings(settings, schemas)
        client = make_client(settings)
        ensure_tables(client, specs, create=True, stream=False)
        mappers = MapperCache(settings, {s: pk for s, (_, pk) in schemas.items()})
        items: dict[tuple[str, str], dict[str, Any]] = {}
        for ev in [e for e in stream if e.op == "c"] + snapshot:
            mapper = mappers.mapper_for(ev)
            table = specs[0].name
            item = mapper.to_item(ev.row)  # type: ignore[union-attr]
            client.put_item(TableName=table, Item=item)  # a key of the wrong type fails here
            key = {k.name: item[k.name] for k in specs[0].key}
            items[(ev.op, str(ev.pk[KEY]))] = client.get_item(TableName=table, Key=key,
                                                              ConsistentRead=True)["Item"]
        yield Run(settings, [e for e in stream if e.op == "c"], snapshot, items)
    finally:
        if client is not None:
            for page in client.get_paginator("list_tables").paginate():
                for name in page["TableNames"]:
                    if name.startswith(f"{tag}-"):
                        client.delete_table(TableName=name)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {q(db)}")
        conn.close()
        _drop_topics(stack_env["REPLICATOR_KAFKA__BOOTSTRAP_SERVERS"], tag)
        _drop_redis(stack_env["REPLICATOR_CONTROL__REDIS_URL"], tag)
        os.environ.clear()
        os.environ.update(saved)


def _drop_topics(servers: str, prefix: str) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": servers})
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix + ".")]
    for fut in (admin.delete_topics(topics, operation_timeout=30) if topics else {}).values():
        fut.result()


def _drop_redis(url: str, namespace: str) -> None:
    import redis

    r = redis.Redis.from_url(url)
    keys = list(r.scan_iter(match=f"{namespace}:*", count=500))
    if keys:
        r.delete(*keys)
    r.close()


@pytest.mark.parametrize("path", ["stream", "snapshot"])
def test_json_numbers_beyond_a_double_arrive_exactly(run: Run, path: str) -> None:
    events = run.stream if path == "stream" else run.snapshot
    assert {str(e.pk[KEY]): e.row[DOC] for e in events} == {k: JsonDoc(v) for k, v in EXPECTED_DOCS.items()}
    op = "c" if path == "stream" else "r"
    doc = run.items[(op, ROWS[0][0])][DOC]["M"]
    assert doc["big"] == {"N": "18446744073709551616"} and doc["neg"] == {"N": "-18446744073709551617"}
    assert Decimal(doc["pi"]["N"]) == Decimal("3.14159265358979323846264338327950288")
    assert run.items[(op, ROWS[1][0])][DOC] == {"L": [{"N": "99999999999999999999999999999999999999"}]}


@pytest.mark.parametrize("path", ["stream", "snapshot"])
def test_uuid_and_inet_columns_are_their_text_and_fit_the_created_key_schema(run: Run, path: str) -> None:
    events = run.stream if path == "stream" else run.snapshot
    assert sorted((e.row[KEY], e.row[IP6], e.row[IP4]) for e in events) == sorted(
        (r[0], r[2], r[3]) for r in ROWS)
    op = "c" if path == "stream" else "r"
    for row in ROWS:
        item = run.items[(op, row[0])]  # put under the created key schema and read back by it
        assert item[KEY] == {"S": row[0]} and item[IP6] == {"S": row[2]} and item[IP4] == {"S": row[3]}


def test_stream_and_snapshot_events_of_a_row_share_its_kafka_key(run: Run) -> None:
    stream = {str(e.pk[KEY]): e.key_bytes() for e in run.stream}
    snapshot = {str(e.pk[KEY]): e.key_bytes() for e in run.snapshot}
    assert stream == snapshot and len(stream) == len(ROWS)


@pytest.mark.parametrize("path", ["stream", "snapshot"])
def test_names_mysql_allows_only_quoted_are_accepted_and_carried(run: Run, path: str) -> None:
    events = run.stream if path == "stream" else run.snapshot
    mapping = run.settings.tables[0]
    assert {(e.db, e.table) for e in events} == {(mapping.database, TABLE)}
    assert all(set(e.row) == {KEY, DOC, IP6, IP4, NOTE} for e in events)
    op = "c" if path == "stream" else "r"
    assert {run.items[(op, r[0])][NOTE]["S"] for r in ROWS} == {r[4] for r in ROWS}

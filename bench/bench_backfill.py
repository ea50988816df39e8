"""Backfill throughput against a bare copy of the same table, measured in the same run.

    backfill:  replicator backfill (consistent chunks -> Kafka -> the writer -> DynamoDB),
               timed from start until the writer has applied every row
    baseline:  chunked SELECT of the same table + BatchWriteItem (25 items per call) of the
               same mapped items, with the writer's concurrency, straight into DynamoDB

Both write into DynamoDB Local on this machine. BENCH_BACKFILL_ROWS sets the table size
(default 50,000, so that the whole of ``make bench`` fits in 30 minutes; the issue's figure is
BENCH_BACKFILL_ROWS=1000000). Reports rows/s of each and the ratio (target >= 0.7).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pymysql

from bench.deadline import Deadline
from replicator.adapters.dynamodb import dynamodb_client
from replicator.backfill.source import SnapshotSource
from replicator.mapping.mapper import TableMapper
from replicator.phase import set_migration_phase
from replicator.settings import Settings, load_settings

ROWS = int(os.environ.get("BENCH_BACKFILL_ROWS", "50000"))
CHUNK = 2000
PASS_DEADLINE_S = 60 + ROWS / 100  # per pass; 100 rows/s is far below any rate measured here
BUDGET_S = 2 * PASS_DEADLINE_S + 120 + ROWS / 5000  # bench/__main__.py's watchdog


def admin(db: str | None = None) -> pymysql.Connection[Any]:
    return pymysql.connect(
        host=os.environ["REPLICATOR_MYSQL__HOST"], port=int(os.environ["REPLICATOR_MYSQL__PORT"]),
        user=os.environ["STACK_MYSQL_ADMIN_USER"], password=os.environ["STACK_MYSQL_ADMIN_PASSWORD"],
        database=db, autocommit=True)


def create_table(db: str) -> None:
    conn = admin()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{db}`")
        cur.execute(f"CREATE TABLE `{db}`.items (id BIGINT PRIMARY KEY, name VARCHAR(40), qty INT, "
                    "price DECIMAL(10,2), updated DATETIME(6))")
        for first in range(1, ROWS + 1, 10_000):
            cur.executemany(f"INSERT INTO `{db}`.items VALUES (%s, %s, %s, %s, NOW(6))",
                            [(i, f"item-{i}", i % 100, f"{i / 100:.2f}")
                             for i in range(first, min(first + 10_000, ROWS + 1))])
    conn.close()


def dynamo(settings: Settings) -> Any:
    return dynamodb_client(settings.dynamodb)


def make_target(client: Any, name: str) -> None:
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])


def baseline(settings: Settings, client: Any, target: str) -> float:
    """Bare chunked SELECT + BatchWriteItem at the writer's concurrency; returns rows/s."""
    mapping = settings.tables[0]
    t0 = time.monotonic()
    deadline = Deadline(PASS_DEADLINE_S, f"the baseline to copy {ROWS} rows")
    with SnapshotSource(settings.mysql) as src, ThreadPoolExecutor(settings.dynamodb.max_concurrency) as pool:
        shape = src.table_shape(mapping.database, mapping.table)
        mapper = TableMapper(mapping, shape.columns, shape.pk)
        cursor = None
        while True:
            deadline.check(f"up to key {cursor}")
            chunk = src.read_chunk(shape, cursor, CHUNK)
            if not chunk.rows:
                break
            items = [mapper.to_item(r) for r in chunk.rows]
            batches = [items[i:i + 25] for i in range(0, len(items), 25)]
            list(pool.map(lambda b: _batch_write(client, target, b), batches))
            cursor = [chunk.rows[-1][k] for k in shape.pk]
    return ROWS / (time.monotonic() - t0)


def _batch_write(client: Any, table: str, items: list[dict[str, Any]]) -> None:
    requests = [{"PutRequest": {"Item": it}} for it in items]
    while requests:
        out = client.batch_write_item(RequestItems={table: requests})
        requests = out.get("UnprocessedItems", {}).get(table, [])


def pipeline(cfg: Path, env: dict[str, str], logs: Path) -> float:
    """replicator backfill with the writer running, until the writer applied every row; rows/s."""
    writer = subprocess.Popen([sys.executable, "-m", "replicator.cli", "write", "--config", str(cfg),
                               "--create-tables"], env=env, stdout=logs.open("ab"), stderr=subprocess.STDOUT)
    try:
        time.sleep(3)  # let the writer join its group; not part of the backfill's time
        t0 = time.monotonic()
        try:
            rc = subprocess.run([sys.executable, "-m", "replicator.cli", "backfill", "--config", str(cfg),
                                 "--chunk-rows", str(CHUNK), "--max-rows-per-s", "0", "--no-progress"],
                                env=env, stdout=logs.open("ab"), stderr=subprocess.STDOUT, check=False,
                                timeout=PASS_DEADLINE_S).returncode
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"replicator backfill of {ROWS} rows did not finish within "
                               f"{PASS_DEADLINE_S:.0f} s; see {logs}") from exc
        elapsed = time.monotonic() - t0
        if rc != 0:
            raise RuntimeError(f"backfill exited {rc}; see {logs}")
        return ROWS / elapsed
    finally:
        writer.send_signal(signal.SIGTERM)
        try:
            writer.wait(60)
        except subprocess.TimeoutExpired:
            print(f"the writer did not stop within 60 s of SIGTERM; killed (see {logs})")
            writer.kill()
            writer.wait(10)


def main() -> dict[str, Any]:
    run = "b" + uuid.uuid4().hex[:8]
    db = f"bench_{run}"
    # No stream on the writer's table: nothing here reaches phase 5, and DynamoDB Local slows down
    # with every stream record it keeps (the baseline's table has none either).
    env = dict(os.environ, REPLICATOR_KAFKA__TOPIC_PREFIX=run, REPLICATOR_DYNAMODB__TABLE_PREFIX=f"{run}-",
               REPLICATOR_CONTROL__NAMESPACE=run, REPLICATOR_DYNAMODB__STREAMS="false")
    os.environ.update(env)
    tmp = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    cfg = tmp / "config.yaml"
    cfg.write_text(f"tables: [{{source: {db}.items, key: {{pk: 'ITEM#{{id}}'}}}}]\n")
    settings = load_settings(cfg)
    client = dynamo(settings)
    print(f"creating {ROWS} rows in {db} ...", flush=True)
    create_table(db)
    try:
        make_target(client, f"{run}-baseline")
        base = baseline(settings, client, f"{run}-baseline")
        print(f"baseline (SELECT + BatchWriteItem): {base:,.0f} rows/s", flush=True)
        set_migration_phase(2, reason="benchmark", settings=settings, force=True)
        piped = pipeline(cfg, env, tmp / "processes.log")
        print(f"backfill -> Kafka -> writer -> DynamoDB: {piped:,.0f} rows/s", flush=True)
    finally:
        conn = admin()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE `{db}`")
        for name in (f"{run}-baseline", f"{run}-items"):
            with contextlib.suppress(client.exceptions.ResourceNotFoundException):
                client.delete_table(TableName=name)
    return {"rows": ROWS, "backfill_rows_per_s": round(piped), "baseline_rows_per_s": round(base),
            "ratio": round(piped / base, 3), "target_ratio": 0.7}

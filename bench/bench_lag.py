"""End-to-end lag: MySQL commit -> DynamoDB item visible, through the whole pipeline.

1. The rate: a bare boto3 loop of conditional PutItem (the writer's condition) from as many
   threads as ``dynamodb.max_concurrency`` measures what DynamoDB takes (items/s); the pipeline
   then runs at half of that, so DynamoDB (Local, here the bottleneck) is not saturated.
2. ``replicator run`` and ``replicator write`` (default options; the apply mode: auto) run as their
   own processes, as deployed; the benchmark inserts rows at that steady rate (small
   transactions) and, for every row, takes three times: the client's COMMIT returned, the event
   arrived at a ``read_committed`` consumer, the item was found by a consistent read (one
   ``BatchGetItem`` of the oldest pending keys in a loop, so the poll adds a read's round trip).
3. Reported: p50/p99 of commit -> visible (target p99 < 1 s), and its two parts: commit -> Kafka
   (the reader) and Kafka -> visible (the writer's share: consume, map, write, acknowledgement).

BENCH_LAG_SECONDS sets the measured time (default 20 s, after 3 s of warm-up), BENCH_LAG_APPLY_MODE
the writer's ``--apply-mode`` (default auto: transact on DynamoDB Local, put on AWS).
Tables are created without a stream (DynamoDB Local slows down with every record it keeps).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.bench_reader import _admin
from bench.deadline import Deadline, forget_child, register_child, wait_until
from bench.topics import delete_topics
from consumers.writer.applier import make_client
from replicator.adapters import kafka
from replicator.adapters.dynamodb import dynamodb_client
from replicator.adapters.redis import redis_client
from replicator.mapping.conditional import CONDITION
from replicator.mapping.names import ORIGIN_ATTR, VERSION_ATTR
from replicator.phase import set_migration_phase
from replicator.settings import Settings, load_settings
from replicator.topics import table_topic

SECONDS = float(os.environ.get("BENCH_LAG_SECONDS", "20"))
APPLY_MODE = os.environ.get("BENCH_LAG_APPLY_MODE", "auto")
WARMUP_S = 3.0
BARE_ITEMS = int(os.environ.get("BENCH_LAG_BARE_ITEMS", "1000"))
TARGET_P99_MS = 1000
BUDGET_S = 420 + 2 * SECONDS  # bench/__main__.py's watchdog
NOTE = "x" * 100
OFFSET_END = -1  # librdkafka's logical offset: the partition's end


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


class LagBench:
    def __init__(self) -> None:
        self.run = "lag" + uuid.uuid4().hex[:8]
        self.db = f"bench_{self.run}"
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-lag-"))
        self.cfg = self.tmp / "config.yaml"
        self.cfg.write_text(f"tables: [{{source: {self.db}.items}}]\n")
        overrides = {"REPLICATOR_KAFKA__TOPIC_PREFIX": self.run,
                     "REPLICATOR_DYNAMODB__TABLE_PREFIX": f"{self.run}-",
                     "REPLICATOR_CONTROL__NAMESPACE": self.run, "REPLICATOR_DYNAMODB__STREAMS": "false",
                     "REPLICATOR_MYSQL__SERVER_ID": str(random.randint(100_000, 4_000_000)),
                     "REPLICATOR_LOG__LEVEL": "warning"}
        self.env = dict(os.environ, **overrides)
        self.settings: Settings = load_settings(
            self.cfg, kafka={"topic_prefix": self.run}, control={"namespace": self.run},
            dynamodb={"table_prefix": f"{self.run}-", "streams": False})
        self.client = make_client(self.settings)
        self.table = self.settings.dynamodb.table_prefix + self.settings.tables[0].target_name
        self.topic = table_topic(self.run, f"{self.db}.items")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs = self.tmp / "processes.log"

    # ----------------------------------------------------------------- set-up / tear-down

    def setup(self) -> None:
        conn = _admin()
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{self.db}`")
            cur.execute(f"CREATE TABLE `{self.db}`.items (id BIGINT PRIMARY KEY, v INT, note VARCHAR(100))")
        conn.commit()
        conn.close()
        self.client.create_table(TableName=f"{self.run}-bare", BillingMode="PAY_PER_REQUEST",
                                 KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                                 AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}])
        set_migration_phase(2, reason="benchmark", settings=self.settings, force=True)

    def start_pipeline(self) -> None:
        out = self.logs.open("ab")
        for cmd in (["run"], ["write", "--create-tables", "--apply-mode", APPLY_MODE]):
            proc = subprocess.Popen([sys.executable, "-m", "replicator.cli", *cmd, "--config", str(self.cfg)],
                                    env=self.env, stdout=out, stderr=subprocess.STDOUT)
            self.procs.append(register_child(proc))
        out.close()

    def stop_pipeline(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                print(f"pid {proc.pid} did not stop within 30 s of SIGTERM; killed (see {self.logs})")
                proc.kill()
                proc.wait(10)
            forget_child(proc)

    def cleanup(self) -> None:
        """Every step on its own: one that fails (DynamoDB Local timing out) is reported, and the
        others still run."""
        for step in (self._drop_database, self._delete_tables, self._delete_topics, self._delete_keys):
            try:
                step()
            except Exception as exc:  # a benchmark's clean-up reports and goes on
                print(f"clean-up {step.__name__.lstrip('_')} failed: {type(exc).__name__}: {exc}")

    def _drop_database(self) -> None:
        conn = _admin()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.db}`")
        conn.close()

    def _delete_tables(self) -> None:
        for name in (self.table, f"{self.run}-bare"):
            with contextlib.suppress(self.client.exceptions.ResourceNotFoundException):  # never created
                self.client.delete_table(TableName=name)

    def _delete_topics(self) -> None:
        delete_topics(self.settings.kafka, (self.run + ".",))

    def _delete_keys(self) -> None:
        r = redis_client(self.settings.control.redis_url)
        keys = list(r.scan_iter(match=f"{self.run}:*"))
        if keys:
            r.delete(*keys)
        r.close()

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                role = " ".join(map(str, proc.args[3:5]))  # type: ignore[index]
                raise RuntimeError(f"replicator {role} exited with {proc.returncode}; see {self.logs}")

    # ----------------------------------------------------------------- measurements

    def bare_rate(self) -> float:
        """Conditional PutItem of BARE_ITEMS items from max_concurrency threads: items/s."""
        table = f"{self.run}-bare"

        # Retried as a user's loop would: botocore's standard mode (DynamoDB Local answers 500
        # "waiting for a lock" when busy); the writer retries those itself.
        client = dynamodb_client(self.settings.dynamodb, attempts=10, read_timeout_s=30,
                                 pool_size=2 * self.settings.dynamodb.max_concurrency)

        def put(k: int) -> None:
            client.put_item(TableName=table, Item={
                "id": {"N": str(k)}, "v": {"N": "0"}, "note": {"S": NOTE}, VERSION_ATTR: {"N": str(k)},
                ORIGIN_ATTR: {"S": "cdc"}}, ConditionExpression=CONDITION,
                ExpressionAttributeNames={"#v": VERSION_ATTR},
                ExpressionAttributeValues={":v": {"N": str(k)}})

        with ThreadPoolExecutor(self.settings.dynamodb.max_concurrency) as pool:
            list(pool.map(put, range(-50, 0)))  # warm-up
            t0 = time.perf_counter()
            list(pool.map(put, range(BARE_ITEMS)))
            return BARE_ITEMS / (time.perf_counter() - t0)

    def visible(self, ids: list[int]) -> list[int]:
        """The ids among ``ids`` (at most 100) whose items a consistent read finds."""
        try:
            out = self.client.batch_get_item(RequestItems={self.table: {
                "Keys": [{"id": {"N": str(i)}} for i in ids], "ConsistentRead": True,
                "ProjectionExpression": "id"}})
        except self.client.exceptions.ResourceNotFoundException:
            return []  # the writer has not created the table yet
        return [int(item["id"]["N"]) for item in out.get("Responses", {}).get(self.table, [])]

    def wait_ready(self) -> None:
        """A probe row through the whole pipeline: both processes started and caught up. The reader
        starts at the binlog head it finds, so a probe is written again every second until one
        shows (negative ids: not counted)."""
        conn = _admin(self.db)
        probes: list[int] = []

        def through() -> bool:
            self.check_alive()
            if len(probes) < 100 and (not probes or time.monotonic() - probe_at[-1] >= 1.0):
                probes.append(-1 - len(probes))
                probe_at.append(time.monotonic())
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO items VALUES (%s, 0, 'probe')", (probes[-1],))
                conn.commit()
            return bool(self.visible(probes[-100:]))

        probe_at: list[float] = []
        try:
            wait_until(through, 120, f"a probe row through the pipeline into {self.table} (see {self.logs})",
                       interval=0.2)
        finally:
            conn.close()

    def measure(self, rate: float) -> dict[str, list[float]]:
        """Rows at ``rate`` rows/s for WARMUP_S + SECONDS; the three times of each counted row."""
        committed: dict[int, float] = {}
        in_kafka: dict[int, float] = {}
        seen: dict[int, float] = {}
        stop = threading.Event()
        events = kafka.consumer(self.settings.kafka, f"{self.run}-lag", **{
            "isolation.level": "read_committed", "fetch.wait.max.ms": 5, "fetch.min.bytes": 1})
        parts = events.list_topics(self.topic, timeout=10).topics[self.topic].partitions
        events.assign([kafka.TopicPartition(self.topic, p, OFFSET_END) for p in parts])

        def consume() -> None:
            while not stop.is_set():
                msg = events.poll(0.05)
                key = None if msg is None or msg.error() else msg.key()
                if key is not None:
                    in_kafka.setdefault(int(key.decode().split(":")[1].rstrip("}")), time.time())

        def poll_dynamodb() -> None:
            while not stop.is_set():
                pending = [i for i in list(committed) if i not in seen][:100]
                if not pending:
                    time.sleep(0.005)
                    continue
                for i in self.visible(pending):
                    seen[i] = time.time()

        threads = [threading.Thread(target=consume, daemon=True),
                   threading.Thread(target=poll_dynamodb, daemon=True)]
        for t in threads:
            t.start()
        per_tx = max(1, round(rate / 100))
        conn = _admin(self.db)
        try:
            self._load(conn, rate, per_tx, committed)
            deadline = Deadline(60, f"the last of {len(committed)} rows to become visible in {self.table}")
            while len(seen) < len(committed):
                self.check_alive()
                deadline.check(f"{len(committed) - len(seen)} not visible yet")
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
            events.close()
            conn.close()
        first = int((WARMUP_S * rate) // per_tx * per_tx) + 1
        ids = [i for i in committed if i >= first and i in in_kafka]
        return {"total": [seen[i] - committed[i] for i in ids],
                "reader": [in_kafka[i] - committed[i] for i in ids],
                "writer": [seen[i] - in_kafka[i] for i in ids]}

    def _load(self, conn: Any, rate: float, per_tx: int, committed: dict[int, float]) -> None:
        interval = per_tx / rate
        n_tx = int((WARMUP_S + SECONDS) * rate / per_tx)
        with conn.cursor() as cur:
            t_next = time.perf_counter()
            for tx in range(n_tx):
                ids = range(1 + tx * per_tx, 1 + (tx + 1) * per_tx)
                cur.executemany("INSERT INTO items VALUES (%s, 0, %s)", [(i, NOTE) for i in ids])
                conn.commit()
                now = time.time()
                for i in ids:
                    committed[i] = now
                if tx % 50 == 0:
                    self.check_alive()
                t_next += interval
                time.sleep(max(0.0, t_next - time.perf_counter()))


def main() -> dict[str, Any]:
    b = LagBench()
    try:
        b.setup()
        bare = b.bare_rate()
        rate = bare / 2
        print(f"bare boto3 conditional PutItem x{b.settings.dynamodb.max_concurrency}: {bare:.0f} items/s; "
              f"pipeline rate: {rate:.0f} rows/s", flush=True)
        b.start_pipeline()
        try:
            t0 = time.monotonic()
            b.wait_ready()
            print(f"pipeline ready in {time.monotonic() - t0:.1f} s", flush=True)
            lags = b.measure(rate)
        finally:
            b.stop_pipeline()
    finally:
        b.cleanup()
    return _report(bare, rate, lags)


def _report(bare: float, rate: float, lags: dict[str, list[float]]) -> dict[str, Any]:
    figures: dict[str, Any] = {"bare_put_items_per_s": round(bare, 1), "rate_rows_per_s": round(rate, 1),
                               "apply_mode": APPLY_MODE,
                               "rows": len(lags["total"]), "seconds": SECONDS,
                               "target_p99_ms": TARGET_P99_MS}
    for part in ("total", "reader", "writer"):
        xs = lags[part]
        figures[f"{part}_p50_ms"] = round(statistics.median(xs) * 1000, 1)
        figures[f"{part}_p99_ms"] = round(_pct(xs, 0.99) * 1000, 1)
    figures["writer_share_of_p50"] = round(figures["writer_p50_ms"] / figures["total_p50_ms"], 2)
    print(f"lag commit -> visible at {rate:.0f} rows/s (apply mode {APPLY_MODE}): "
          f"p50 {figures['total_p50_ms']:.0f} ms, "
          f"p99 {figures['total_p99_ms']:.0f} ms (target p99 < {TARGET_P99_MS} ms: "
          f"{'met' if figures['total_p99_ms'] < TARGET_P99_MS else 'NOT met'}; {len(lags['total'])} rows)")
    print(f"  commit -> Kafka (reader):         p50 {figures['reader_p50_ms']:.0f} ms, "
          f"p99 {figures['reader_p99_ms']:.0f} ms")
    print(f"  Kafka -> visible (writer's share): p50 {figures['writer_p50_ms']:.0f} ms, "
          f"p99 {figures['writer_p99_ms']:.0f} ms ({figures['writer_share_of_p50']:.0%} of the p50)")
    return figures

"""Writer throughput: Kafka -> DynamoDB items/s against raw BatchWriteItem, and hot-key coalescing.

Same run, same endpoint, same concurrency (``dynamodb.max_concurrency``), same items:
- baseline: unconditional ``BatchWriteItem`` of 25 items, no Kafka (measured before and after);
- the writer in ``transact`` mode: consume from Kafka, decode, map, coalesce, apply as
  version-conditional ``TransactWriteItems`` of up to 100, commit offsets;
- the writer in ``put`` mode (one conditional ``PutItem`` per item, the default against AWS:
  half the write capacity; ``bench_writer_cost`` measures the writer's CPU per item in both);
- hot keys: 1,000 updates to 10 keys; how many DynamoDB writes coalescing saved.

Run with the stack's environment: ``.venv/bin/python -m bench bench_writer``.
"""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from bench.deadline import Deadline, wait_until
from consumers.writer.applier import ApplyMode, make_client
from consumers.writer.metrics import WriterMetrics
from consumers.writer.runner import WriterOptions
from consumers.writer.service import build_writer, close_writer, start_writer
from consumers.writer.tables import TableSpec, ensure_tables
from replicator.adapters import kafka
from replicator.adapters.redis import redis_client
from replicator.control import HistoryEntry, PhaseState, open_control_store
from replicator.events import ChangeEvent, Position, Temporal, TxInfo, schema_fingerprint
from replicator.mapping import TableMapper
from replicator.mapping.conditional import metadata
from replicator.settings import Settings, load_settings
from replicator.topics import TopicSpec, table_topic

ITEMS = int(os.environ.get("BENCH_WRITER_ITEMS", "4000"))
PUT_ITEMS = int(os.environ.get("BENCH_WRITER_PUT_ITEMS", "1000"))  # put mode stalls on a busy DynamoDB Local
HOT_UPDATES, HOT_KEYS = 1000, 10
BUDGET_S = 240 + (2 * ITEMS + PUT_ITEMS + HOT_UPDATES) / 20  # bench/__main__.py's watchdog


def _apply_deadline(n: int) -> float:
    """Seconds the writer may take for ``n`` events: 20/s is far below any rate measured here."""
    return 60 + n / 20
COLUMNS = (("id", "bigint(20)"), ("email", "varchar(255)"), ("name", "varchar(255)"),
           ("balance", "decimal(12,2)"), ("visits", "int(11)"), ("created", "datetime(6)"),
           ("bio", "text"), ("active", "tinyint(1)"))
SCHEMA = schema_fingerprint(COLUMNS)


def _row(key: int, n: int) -> dict[str, Any]:
    return {"id": key, "email": f"user{key}@example.com", "name": f"User {key}",
            "balance": Decimal(key * 7 + n).scaleb(-2), "visits": n,
            "created": Temporal("datetime", "2024-01-31T10:00:00.123456"), "bio": "x" * 200, "active": 1}


def _event(db: str, key: int, version: int, n: int = 0) -> ChangeEvent:
    return ChangeEvent(op="u" if n else "c", db=db, table="users", pk={"id": key},
                       before=_row(key, n) if n else None, after=_row(key, n),
                       pos=Position("mysql-bin.000001", version), version=version, ts_ms=0,
                       tx=TxInfo(str(version), 0), schema=SCHEMA, columns=COLUMNS)


class Bench:
    def __init__(self) -> None:
        self.unique = "bw" + uuid.uuid4().hex[:8]
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        self.db = self.unique
        self.settings: Settings = load_settings(
            kafka={"topic_prefix": self.unique}, dynamodb={"table_prefix": f"{self.unique}-"},
            control={"namespace": self.unique}, tables=[{"source": f"{self.db}.users"}],
            log={"level": "warning"})
        self.client = make_client(self.settings)
        self.mapper = TableMapper(self.settings.tables[0], COLUMNS, ("id",))
        self.topic = table_topic(self.unique, f"{self.db}.users")
        self.admin = kafka.admin_client(self.settings.kafka)
        self.tables: list[str] = []

    # ----------------------------------------------------------------- set-up / tear-down

    def table(self, name: str) -> str:
        full = f"{self.unique}-{name}"
        spec = TableSpec(full, self.settings.tables[0].source, self.mapper.key_attributes)
        # No stream: nothing here reads one, and DynamoDB Local slows down with every record it keeps.
        ensure_tables(self.client, [spec], create=True, stream=False)
        self.tables.append(full)
        return full

    def topics(self) -> None:
        kafka.ensure_topics(self.settings.kafka, [TopicSpec(self.topic, 3)])

        def visible() -> bool:  # a consumer subscribing before this sees "topic not available"
            meta = self.admin.list_topics(self.topic, timeout=5).topics.get(self.topic)
            return bool(meta and meta.error is None and len(meta.partitions) == 3
                        and all(p.leader >= 0 for p in meta.partitions.values()))

        wait_until(visible, 30, f"topic {self.topic} to have 3 partitions with leaders", interval=0.2)

    def cleanup(self) -> None:
        for name in self.tables:
            self.client.delete_table(TableName=name)
        topics = [t for t in self.admin.list_topics(timeout=10).topics if t.startswith(self.unique + ".")]
        if topics:
            for fut in self.admin.delete_topics(topics).values():
                fut.result()
        r = redis_client(self.settings.control.redis_url)
        keys = list(r.scan_iter(match=f"{self.unique}:*"))
        if keys:
            r.delete(*keys)

    def produce(self, events: list[ChangeEvent]) -> None:
        p = kafka.producer(self.settings.kafka, **{"linger.ms": 20})
        for e in events:
            p.produce(self.topic, key=e.key_bytes(), value=e.to_json())
        left = p.flush(60)
        if left:
            raise RuntimeError(f"Kafka did not acknowledge {left} of {len(events)} events to {self.topic} "
                               f"within 60 s")

    # ----------------------------------------------------------------- measurements

    def batch_write_baseline(self, n: int) -> float:
        """Raw unconditional BatchWriteItem of 25 items at the writer's concurrency: items/s."""
        table = self.table(f"raw{len(self.tables)}")
        items = [self.mapper.to_item(_row(k, 0), metadata=metadata(k, "cdc")) for k in range(n)]
        chunks = [items[i:i + 25] for i in range(0, n, 25)]

        deadline = Deadline(_apply_deadline(n), f"BatchWriteItem of {n} items to {table}")

        def send(chunk: list[dict[str, Any]]) -> None:
            request = {table: [{"PutRequest": {"Item": it}} for it in chunk]}
            while request:
                deadline.check("items still unprocessed")
                request = self.client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

        with ThreadPoolExecutor(self.settings.dynamodb.max_concurrency) as pool:
            t0 = time.perf_counter()
            list(pool.map(send, chunks))
            return n / (time.perf_counter() - t0)

    def writer_rate(self, mode: ApplyMode, n: int, first_key: int) -> tuple[float, dict[str, int]]:
        """Items/s from Kafka to DynamoDB through the writer (after a warm-up batch)."""
        with open_control_store(self.settings) as control:
            if not control.get_phase().dual_write_enabled:
                now = time.time()
                control.compare_and_set(PhaseState(2, 1, now, "bench", "bench"),
                                        HistoryEntry(1, now, "bench", 1, 2, "bench"))
            writer = build_writer(self.settings, control, mode=mode, client=self.client,
                                  metrics=WriterMetrics(),
                                  options=WriterOptions(max_batch=2000, poll_timeout_s=0.05))
            start_writer(writer)
            try:
                base = writer.totals.events
                self.produce([_event(self.db, first_key - 1 - i, 10 + i) for i in range(50)])
                _step_until(writer, base + 50, f"the {mode} writer's 50 warm-up events")
                self.produce([_event(self.db, first_key + k, 1000 + k) for k in range(n)])
                t0 = time.perf_counter()
                _step_until(writer, base + 50 + n, f"the {mode} writer to apply {n} events")
                rate = n / (time.perf_counter() - t0)
                t = writer.totals
                return rate, {"applied": t.applied, "replayed": t.replayed, "coalesced": t.coalesced}
            finally:
                close_writer(writer)

    def hot_keys(self) -> dict[str, int]:
        """1,000 updates to 10 keys: DynamoDB writes issued vs events."""
        with open_control_store(self.settings) as control:
            writer = build_writer(self.settings, control, client=self.client, metrics=WriterMetrics(),
                                  options=WriterOptions(max_batch=2000, poll_timeout_s=0.5))
            start_writer(writer)
            try:
                base = (writer.totals.events, writer.totals.applied, writer.totals.replayed)
                events = [_event(self.db, 10_000_000 + i % HOT_KEYS, 5_000_000 + i, n=1 + i // HOT_KEYS)
                          for i in range(HOT_UPDATES)]
                self.produce(events)
                _step_until(writer, base[0] + HOT_UPDATES, f"the writer to take {HOT_UPDATES} hot updates")
                writes = (writer.totals.applied - base[1]) + (writer.totals.replayed - base[2])
                return {"events": HOT_UPDATES, "keys": HOT_KEYS, "dynamodb_writes": writes,
                        "writes_saved": HOT_UPDATES - writes}
            finally:
                close_writer(writer)


def _step_until(writer: Any, events: int, what: str) -> None:
    """Run the writer's loop until it counted ``events`` events, within a deadline."""
    start = writer.totals.events
    deadline = Deadline(_apply_deadline(events - start), what)
    while writer.totals.events < events:
        deadline.check(f"{writer.totals.events - start} of {events - start} seen")
        writer.step()


def main() -> dict[str, Any]:
    b = Bench()
    try:
        b.topics()
        b.table("users")  # the writer's target (default target name: the source table)
        raw1 = b.batch_write_baseline(ITEMS)
        transact, _ = b.writer_rate("transact", ITEMS, first_key=1_000_000)
        put, _ = b.writer_rate("put", PUT_ITEMS, first_key=2_000_000)
        raw2 = b.batch_write_baseline(ITEMS)
        hot = b.hot_keys()
    finally:
        b.cleanup()
    raw = (raw1 + raw2) / 2
    figures: dict[str, Any] = {
        "items": ITEMS, "put_items": PUT_ITEMS, "concurrency": b.settings.dynamodb.max_concurrency,
        "batch_write_items_per_s": round(raw, 1), "batch_write_runs": [round(raw1, 1), round(raw2, 1)],
        "writer_transact_items_per_s": round(transact, 1),
        "ratio_transact_vs_batch_write": round(transact / raw, 3),
        "writer_put_items_per_s": round(put, 1), "ratio_put_vs_batch_write": round(put / raw, 3),
        "hot_key": hot,
    }
    print(f"BatchWriteItem(25) x{figures['concurrency']}: {raw:.0f} items/s (runs {raw1:.0f}, {raw2:.0f})")
    print(f"writer transact:     {transact:.0f} items/s  ratio {transact / raw:.2f}")
    print(f"writer put:          {put:.0f} items/s  ratio {put / raw:.2f}")
    print(f"hot keys: {hot['events']} updates to {hot['keys']} keys -> {hot['dynamodb_writes']} "
          f"DynamoDB writes ({hot['writes_saved']} saved by coalescing)")
    return figures

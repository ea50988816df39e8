"""Writer throughput with foreign-key cascades reproduced, against the same rows without cascades.

The same writer (``transact`` mode), the same endpoint, the same number of rows changed in DynamoDB:
- cascades: a stream of ``EVENTS`` events where 20 % are parent deletes with 10 children each
  (``ON DELETE CASCADE``), the other 80 % child inserts; the writer finds each parent's children
  through the GSI on ``pid`` and deletes them at the parent's version;
- baseline: a writer without the foreign key on fresh tables, taking the same rows as explicit
  events (each child delete in the stream before its parent's delete, as an application that
  deletes children itself, or a server that logs cascaded rows, would send them).

Items/s = rows changed (events + cascaded child deletes) / seconds from the first event consumed to
the last row applied. Run with the stack's environment: ``.venv/bin/python -m bench bench_cascade``.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from bench.deadline import Deadline, wait_until
from consumers.writer.applier import make_client
from consumers.writer.cascade.setup import records_spec, with_cascade_indexes
from consumers.writer.metrics import WriterMetrics
from consumers.writer.runner import Writer, WriterOptions
from consumers.writer.schema import TableSchema
from consumers.writer.service import build_cascades, build_writer, check_mappings, close_writer, start_writer
from consumers.writer.tables import ensure_tables
from replicator.adapters import kafka
from replicator.adapters.redis import redis_client
from replicator.control import HistoryEntry, PhaseState, open_control_store
from replicator.errors import TargetUnavailable
from replicator.events import ChangeEvent, Position, TxInfo, schema_fingerprint
from replicator.mapping import TableMapper
from replicator.mapping.conditional import metadata
from replicator.mapping.foreign_keys import CascadeGraph, ForeignKey
from replicator.settings import Settings, load_settings
from replicator.topics import TopicSpec, table_topic

EVENTS = int(os.environ.get("BENCH_CASCADE_EVENTS", "2000"))
CHILDREN = 10
WARM_UP = 50
PARENT_SHARE = 0.2
BUDGET_S = 240 + 2 * EVENTS * (1 + PARENT_SHARE * CHILDREN) / 20
PARENT_COLUMNS = (("id", "bigint(20)"), ("name", "varchar(64)"))
CHILD_COLUMNS = (("id", "bigint(20)"), ("pid", "bigint(20)"), ("note", "varchar(200)"))
SCHEMAS: dict[str, TableSchema] = {"parent": (PARENT_COLUMNS, ("id",)), "child": (CHILD_COLUMNS, ("id",))}


def _event(db: str, table: str, op: str, row: dict[str, Any], version: int) -> ChangeEvent:
    columns = PARENT_COLUMNS if table == "parent" else CHILD_COLUMNS
    return ChangeEvent(op=op, db=db, table=table, pk={"id": row["id"]},  # type: ignore[arg-type]
                       before=row if op == "d" else None, after=row if op != "d" else None,
                       pos=Position("mysql-bin.000001", version), version=version, ts_ms=0,
                       tx=TxInfo(str(version), 0), schema=schema_fingerprint(columns), columns=columns)


class Run:
    """One writer over its own tables and topics (``cascades``: with the foreign key)."""

    def __init__(self, cascades: bool) -> None:
        self.unique = "bc" + uuid.uuid4().hex[:8]
        self.db = self.unique
        self.cascades = cascades
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        settings = load_settings(
            kafka={"topic_prefix": self.unique}, dynamodb={"table_prefix": f"{self.unique}-"},
            control={"namespace": self.unique}, log={"level": "warning"},
            tables=[{"source": f"{self.db}.parent"}, {"source": f"{self.db}.child"}])
        fk = ForeignKey("fk_child", f"{self.db}.child", ("pid",), f"{self.db}.parent", ("id",), "CASCADE")
        self.graph = CascadeGraph([fk] if cascades else [], {t.source for t in settings.tables})
        self.settings: Settings = with_cascade_indexes(settings, self.graph)
        self.schemas = {f"{self.db}.{t}": s for t, s in SCHEMAS.items()}
        self.client = make_client(self.settings)
        self.admin = kafka.admin_client(self.settings.kafka)
        self.topics = {t: table_topic(self.unique, f"{self.db}.{t}") for t in SCHEMAS}

    def setup(self) -> None:
        specs = check_mappings(self.settings, self.schemas)
        if self.cascades:
            specs.append(records_spec(self.settings))
        for attempt in range(3):  # a shared DynamoDB Local sometimes takes over 30 s to create a table
            try:
                ensure_tables(self.client, specs, create=True, stream=False)
                break
            except TargetUnavailable:
                if attempt == 2:
                    raise
        kafka.ensure_topics(self.settings.kafka, [TopicSpec(t, 3) for t in self.topics.values()])

        def visible() -> bool:
            meta = self.admin.list_topics(timeout=5).topics
            return all(t in meta and meta[t].error is None and len(meta[t].partitions) == 3
                       and all(p.leader >= 0 for p in meta[t].partitions.values())
                       for t in self.topics.values())

        wait_until(visible, 30, "the benchmark's topics to have 3 partitions with leaders", interval=0.2)

    def cleanup(self) -> None:
        for page in self.client.get_paginator("list_tables").paginate():
            for name in page["TableNames"]:
                if name.startswith(f"{self.unique}-"):
                    self.client.delete_table(TableName=name)
        existing = self.admin.list_topics(timeout=10).topics
        topics = [t for t in existing if t.startswith(self.unique + ".")]
        if topics:
            for fut in self.admin.delete_topics(topics).values():
                fut.result()
        r = redis_client(self.settings.control.redis_url)
        keys = list(r.scan_iter(match=f"{self.unique}:*"))
        if keys:
            r.delete(*keys)

    def preload(self, parents: int) -> None:
        """The parents to delete and their children, in DynamoDB before the stream (version 1)."""
        mapper = TableMapper(self.settings.tables[1], CHILD_COLUMNS, ("id",))
        pmapper = TableMapper(self.settings.tables[0], PARENT_COLUMNS, ("id",))
        # Every item names its source table (the writer's index queries keep only their own).
        pmeta, meta = metadata(1, "cdc", pmapper.table), metadata(1, "cdc", mapper.table)
        items = [(f"{self.unique}-parent", pmapper.to_item({"id": p, "name": "p"}, metadata=pmeta))
                 for p in range(parents)]
        items += [(f"{self.unique}-child",
                   mapper.to_item({"id": p * CHILDREN + c, "pid": p, "note": "n" * 100}, metadata=meta))
                  for p in range(parents) for c in range(CHILDREN)]
        for i in range(0, len(items), 25):
            request: dict[str, Any] = {}
            for table, item in items[i:i + 25]:
                request.setdefault(table, []).append({"PutRequest": {"Item": item}})
            while request:
                request = self.client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

    def stream(self, parents: int) -> tuple[list[ChangeEvent], int]:
        """The events to produce and the rows they change in DynamoDB."""
        events: list[ChangeEvent] = []
        version = 1000
        inserts = EVENTS - parents
        for i in range(EVENTS):
            version += 10
            p = i * parents // EVENTS
            if i % round(1 / PARENT_SHARE) == 0 and p < parents:  # a parent delete
                if not self.cascades:  # the same rows, as explicit events
                    for c in range(CHILDREN):
                        events.append(_event(self.db, "child", "d", {"id": p * CHILDREN + c, "pid": p,
                                                                      "note": "n" * 100}, version + c))
                events.append(_event(self.db, "parent", "d", {"id": p, "name": "p"}, version + CHILDREN))
            else:
                events.append(_event(self.db, "child", "c", {"id": 10_000_000 + i, "pid": parents + i % 50,
                                                             "note": "n" * 100}, version))
        rows = inserts + parents * (1 + CHILDREN)
        return events, rows

    def produce(self, events: list[ChangeEvent]) -> None:
        p = kafka.producer(self.settings.kafka, **{"linger.ms": 20})
        for e in events:
            p.produce(self.topics[e.table], key=e.key_bytes(), value=e.to_json())
        left = p.flush(60)
        if left:
            raise RuntimeError(f"Kafka did not acknowledge {left} of {len(events)} events within 60 s")

    def measure(self) -> dict[str, Any]:
        parents = round(EVENTS * PARENT_SHARE)
        self.setup()
        self.preload(parents)
        events, rows = self.stream(parents)
        with open_control_store(self.settings) as control:
            now = time.time()
            control.compare_and_set(PhaseState(2, 1, now, "bench", "bench"),
                                    HistoryEntry(1, now, "bench", 1, 2, "bench"))
            writer = build_writer(self.settings, control, client=self.client, metrics=WriterMetrics(),
                                  options=WriterOptions(max_batch=2000, poll_timeout_s=0.05))
            if self.cascades:
                writer.cascades = build_cascades(self.settings, writer, self.graph, self.schemas, self.client)
            start_writer(writer)
            try:
                # Warm-up: the consumer joins its group and fetches before the measured stream exists.
                warm = [_event(self.db, "child", "c", {"id": 90_000_000 + i, "pid": 10**9, "note": "w"},
                               100 + i) for i in range(WARM_UP)]
                self.produce(warm)
                deadline = Deadline(60 + rows / 20, f"the writer to apply {rows} rows")
                while not _done(writer, WARM_UP):
                    deadline.check(f"{writer.totals.events} of {WARM_UP} warm-up events consumed")
                    writer.step()
                self.produce(events)
                t0 = time.perf_counter()
                while not _done(writer, WARM_UP + len(events)):
                    deadline.check(f"{writer.totals.events - WARM_UP} of {len(events)} events consumed")
                    writer.step()
                seconds = time.perf_counter() - t0
            finally:
                close_writer(writer)
        cascaded = sum(s.value for m in writer.metrics.cascaded.collect() for s in m.samples
                       if s.name.endswith("_total"))
        runs = writer.cascades.stats.runs if writer.cascades is not None else 0
        return {"events": len(events), "rows": rows, "cascaded": int(cascaded), "cascade_runs": runs,
                "seconds": round(seconds, 2), "items_per_s": round(rows / seconds, 1)}


def _done(writer: Writer, events: int) -> bool:
    order = writer.cascades
    return writer.totals.events >= events and (order is None or (not order.pending and not order.held))


def main() -> dict[str, Any]:
    figures: dict[str, Any] = {"events": EVENTS, "parent_share": PARENT_SHARE,
                               "children_per_parent": CHILDREN}
    for name, cascades in (("without_cascades", False), ("with_cascades", True)):
        run = Run(cascades)
        try:
            figures[name] = run.measure()
        finally:
            run.cleanup()
    ratio = figures["with_cascades"]["items_per_s"] / figures["without_cascades"]["items_per_s"]
    figures["ratio_cascades_vs_explicit"] = round(ratio, 3)
    w, b = figures["with_cascades"], figures["without_cascades"]
    print(f"with cascades:    {w['rows']} rows ({w['cascaded']} cascaded) in {w['seconds']} s: "
          f"{w['items_per_s']:.0f} items/s")
    print(f"without (explicit child deletes): {b['rows']} rows in {b['seconds']} s: "
          f"{b['items_per_s']:.0f} items/s")
    print(f"ratio {ratio:.2f}")
    return figures

"""The stream validator's cost to the writer: the writer's throughput alone and with a validator
comparing every key of the same stream alongside, in the same run.

Each pass has its own namespace (topic prefix, DynamoDB tables, control keys) holding the same
BENCH_VALIDATE_ROWS change events (inserts of the rows of one MySQL table). The writer applies
them in-process and is timed from its start until it has applied them all; in the second pass a
validator (sample_ratio 1.0) runs in another thread over the same topic. Reports the writer's
events/s in each pass and the overhead (target < 10 %), and what the validator judged.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from typing import Any

from bench.bench_backfill import admin, create_table, dynamo
from bench.deadline import Deadline, wait_until
from replicator.adapters.kafka import ensure_topics, producer
from replicator.backfill.source import SnapshotSource
from replicator.control import HistoryEntry, PhaseState, open_control_store
from replicator.events import ChangeEvent, Position, TxInfo, binlog_version, schema_fingerprint
from replicator.settings import Settings, load_settings
from replicator.topics import pipeline_topics, table_topic

ROWS = int(os.environ.get("BENCH_VALIDATE_ROWS", "20000"))
PASS_DEADLINE_S = 60 + ROWS / 100
BUDGET_S = 2 * PASS_DEADLINE_S + 180


def events_of(settings: Settings, db: str) -> list[ChangeEvent]:
    with SnapshotSource(settings.mysql) as src:
        shape = src.table_shape(db, "items")
        rows, cursor = [], None
        while True:
            chunk = src.read_chunk(shape, cursor, 20_000)
            if not chunk.rows:
                break
            rows += chunk.rows
            cursor = [chunk.rows[-1]["id"]]
    fingerprint = schema_fingerprint(shape.columns)
    return [ChangeEvent("c", db, "items", {"id": r["id"]}, None, r, Position("mysql-bin.000001", 4 + 10 * i),
                        binlog_version("mysql-bin.000001", 4 + 10 * i), int(time.time() * 1000),
                        TxInfo(f"tx{i}", 0), fingerprint, shape.columns) for i, r in enumerate(rows)]


def one_pass(db: str, events: list[ChangeEvent], *, validate: bool) -> dict[str, Any]:
    from consumers.writer.service import build_writer, close_writer, start_writer
    from validators.service import build_validator, close_validator, start_validator

    prefix = f"{db}{'v' if validate else 'w'}"
    # REPLICATOR_* variables win over load_settings' arguments: this pass's namespace goes there.
    os.environ.update({"REPLICATOR_KAFKA__TOPIC_PREFIX": prefix,
                       "REPLICATOR_DYNAMODB__TABLE_PREFIX": f"{prefix}-",
                       "REPLICATOR_CONTROL__NAMESPACE": prefix, "REPLICATOR_DYNAMODB__STREAMS": "false"})
    settings = load_settings(
        tables=[{"source": f"{db}.items", "key": {"pk": "ITEM#{id}"}}], log={"level": "warning"},
        validation={"sample_ratio": 1.0, "recheck_wait_s": 5.0})
    ensure_topics(settings.kafka, pipeline_topics(settings))
    topic = table_topic(prefix, f"{db}.items")
    p = producer(settings.kafka, **{"enable.idempotence": True, "linger.ms": 20})
    for e in events:
        p.produce(topic, key=e.key_bytes(), value=e.to_json())
    assert p.flush(60) == 0
    client = dynamo(settings)
    with open_control_store(settings) as control:
        now = time.time()
        control.compare_and_set(
            PhaseState(phase=2, epoch=1, updated_at=now, updated_by="bench", reason="bench"),
            HistoryEntry(1, now, "bench", 1, 2, "bench"))
        from consumers.writer.schema import load_schemas
        from consumers.writer.service import check_mappings
        from consumers.writer.tables import ensure_tables

        ensure_tables(client, check_mappings(settings, load_schemas(settings)), create=True, stream=False)
        writer = build_writer(settings, control)
        validator = build_validator(settings, control) if validate else None
        threads = [threading.Thread(target=writer.run, daemon=True)]
        if validator is not None:
            start_validator(validator)
            threads.append(threading.Thread(target=validator.run, daemon=True))
        start_writer(writer)
        t0 = time.monotonic()
        for t in threads:
            t.start()
        try:
            wait_until(lambda: writer.totals.events >= len(events), PASS_DEADLINE_S,
                       f"the writer to apply {len(events)} events",
                       progress=lambda: f"{writer.totals.events} applied")
            seconds = time.monotonic() - t0
            if validator is not None:
                done = Deadline(PASS_DEADLINE_S, "the validator to judge every key")
                while validator.totals.events < len(events):
                    done.check(f"{validator.totals.events} consumed")
                    time.sleep(0.1)
        finally:
            writer.stop_event.set()
            if validator is not None:
                validator.stop_event.set()
            for t in threads:
                t.join(60)
            close_writer(writer)
            if validator is not None:
                close_validator(validator)
        judged = validator.totals.to_doc() if validator is not None else {}
        client.delete_table(TableName=f"{prefix}-items")
    return {"seconds": seconds, "events_per_s": len(events) / seconds, "validator": judged}


def main() -> dict[str, Any]:
    db = f"bench_va_{uuid.uuid4().hex[:8]}"
    saved = {k: os.environ.get(k) for k in (
        "REPLICATOR_KAFKA__TOPIC_PREFIX", "REPLICATOR_DYNAMODB__TABLE_PREFIX",
        "REPLICATOR_CONTROL__NAMESPACE", "REPLICATOR_DYNAMODB__STREAMS")}
    import bench.bench_backfill as backfill

    backfill.ROWS = ROWS  # create_table's size
    create_table(db)
    try:
        events = events_of(load_settings(), db)
        alone = one_pass(db, events, validate=False)
        with_validator = one_pass(db, events, validate=True)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        conn = admin()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        conn.close()
    overhead = 1 - with_validator["events_per_s"] / alone["events_per_s"]
    figures = {
        "events": ROWS,
        "writer_alone_events_per_s": round(alone["events_per_s"]),
        "writer_with_validator_events_per_s": round(with_validator["events_per_s"]),
        "validator_overhead": round(overhead, 3),
        "target_overhead": 0.10,
        "validator": with_validator["validator"],
    }
    print(f"writer alone {figures['writer_alone_events_per_s']} events/s, with the stream validator "
          f"{figures['writer_with_validator_events_per_s']} events/s: overhead {overhead * 100:.1f} % "
          f"(target < 10 %); validator judged {with_validator['validator']}")
    return figures


if __name__ == "__main__":
    main()

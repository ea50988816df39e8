"""Reconciliation by checksum ranges on the real stack: a large table with planted differences
finds exactly those by bisection while fetching few rows; --repair fixes them through the
pipeline (the writer's conditional writes); a clean table reports nothing."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from replicator.adapters.kafka import ensure_topics
from replicator.backfill.source import SnapshotSource
from replicator.control import HistoryEntry, PhaseState, open_control_store
from replicator.mapping import TableMapper
from replicator.mapping.names import VERSION_ATTR
from replicator.settings import Settings, load_settings
from replicator.topics import pipeline_topics
from validators.metrics import ReconcileMetrics
from validators.reconcile_ranges import RangeOptions
from validators.reconcile_service import reconcile_tables

pytestmark = pytest.mark.integration

# The size is 200k rows; loading DynamoDB Local runs at ~1k items/s, so CI uses 100k
# (RECONCILE_TEST_ROWS=200000 for the full size). The bisection's cost does not grow with it.
ROWS = int(os.environ.get("RECONCILE_TEST_ROWS", "100000"))


@dataclass
class Big:
    settings: Settings
    source: str
    target: str
    mapper: TableMapper
    rows: int


def _load_items(dynamodb: Any, target: str, items: list[dict[str, Any]]) -> None:
    def put(batch: list[dict[str, Any]]) -> None:
        request = {target: [{"PutRequest": {"Item": i}} for i in batch]}
        while request:
            left = dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            request = left

    batches = [items[i:i + 25] for i in range(0, len(items), 25)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, batches))


@pytest.fixture()
def big(mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str], dynamodb: Any,
        kafka_cleanup: None, redis_client: Any) -> Iterator[Big]:
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE big (id BIGINT PRIMARY KEY, name VARCHAR(40), amount DECIMAL(12,2), "
                    "at DATETIME(3), note VARCHAR(20))")
        for start in range(0, ROWS, 10_000):
            cur.executemany("INSERT INTO big VALUES (%s, %s, %s, %s, %s)",
                            [(i, f"name-{i}", f"{i % 1000}.{i % 100:02d}",
                              f"2024-01-{1 + i % 28:02d} 10:00:00.{i % 1000:03d}", None if i % 7 else "")
                             for i in range(start, min(ROWS, start + 10_000))])
    settings = load_settings(tables=[{"source": f"{mysql_db}.big", "key": {"pk": "BIG#{id}"}}],
                             log={"level": "warning"})
    mapping = settings.tables[0]
    target = settings.dynamodb.table_prefix + mapping.target_name
    dynamodb.create_table(TableName=target, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    with SnapshotSource(settings.mysql) as src:
        shape = src.table_shape(mysql_db, "big")
        mapper = TableMapper(mapping, shape.columns, shape.pk)
        items, cursor = [], None
        while True:
            chunk = src.read_chunk(shape, cursor, 20_000)
            if not chunk.rows:
                break
            items += [mapper.to_item(r, metadata={VERSION_ATTR: {"N": "1"}}) for r in chunk.rows]
            cursor = [chunk.rows[-1]["id"]]
    _load_items(dynamodb, target, items)
    yield Big(settings, mapping.source, target, mapper, ROWS)


def plant(big: Big, dynamodb: Any) -> list[tuple[str, str]]:
    """Five differences, of each kind; the (key, kind) the reconciliation must report."""
    def key(i: int) -> dict[str, Any]:
        return {"pk": {"S": f"BIG#{i}"}}

    third, half = big.rows // 3, big.rows // 2
    dynamodb.update_item(TableName=big.target, Key=key(third), UpdateExpression="SET #n = :v",
                         ExpressionAttributeNames={"#n": "name"},
                         ExpressionAttributeValues={":v": {"S": "x"}})
    dynamodb.update_item(TableName=big.target, Key=key(half), UpdateExpression="SET amount = :v",
                         ExpressionAttributeValues={":v": {"N": "0.01"}})
    dynamodb.update_item(TableName=big.target, Key=key(7), UpdateExpression="SET note = :v",  # '' -> NULL
                         ExpressionAttributeValues={":v": {"NULL": True}})
    dynamodb.delete_item(TableName=big.target, Key=key(big.rows - 1))
    ghost = big.mapper.to_item({"id": big.rows + 5, "name": "ghost", "amount": Decimal("1.00"),
                                "at": None, "note": None}, metadata={VERSION_ATTR: {"N": "1"}})
    dynamodb.put_item(TableName=big.target, Item=ghost)
    return sorted([(f"id={third}", "different"), (f"id={half}", "different"), ("id=7", "different"),
                   (f"id={big.rows - 1}", "missing_in_dynamodb"),
                   (f"id={big.rows + 5}", "extra_in_dynamodb")])


def found(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((d["key"], d["kind"]) for d in doc["differences"])


def test_a_clean_table_costs_two_passes_planted_differences_are_found_by_bisection_and_repaired(
        big: Big, dynamodb: Any) -> None:
    # One table for every step: loading DynamoDB Local is the slow part of this test.
    metrics = ReconcileMetrics()
    [clean], _ = reconcile_tables(big.settings, [big.source], options=RangeOptions(settle_s=0), record=False,
                                  metrics=metrics)
    assert clean["method"] == "checksum" and clean["ok"] and clean["differences"] == []
    sample = metrics.registry.get_sample_value
    assert sample("replicator_reconcile_rows_total", {"table": big.source, "store": "mysql"}) == big.rows
    assert sample("replicator_reconcile_tables_total", {"outcome": "equal"}) == 1
    # Resumable: a run of the same tables after this one finished reports it from the record.
    [again], _ = reconcile_tables(big.settings, [big.source], options=RangeOptions(settle_s=0), record=False,
                                  resume=True, metrics=metrics)
    assert again["resumed"] and again["ok"] and again["mysql_rows"] == big.rows
    assert sample("replicator_reconcile_tables_total", {"outcome": "resumed"}) == 1
    assert (clean["mysql_rows"], clean["dynamodb_items"]) == (big.rows, big.rows)
    assert clean["mysql_rows_fetched"] == 0 and clean["dynamodb_items_refetched"] == 0
    assert clean["ranges_differing"] == 0
    with open_control_store(big.settings) as store:
        progress = store.get_marker(f"reconcile.{big.source}")
    assert progress is not None and progress["finished"] and progress["ok"], "replicator status shows it"

    expected = plant(big, dynamodb)
    [doc], _ = reconcile_tables(big.settings, [big.source], options=RangeOptions(settle_s=0), record=False)
    assert found(doc) == expected
    assert 1 <= doc["ranges_differing"] <= 5  # two planted keys may share a range
    assert doc["mysql_rows_fetched"] <= 5 * 16 + 5, "leaves only: far fewer rows than the table"
    assert doc["dynamodb_items_refetched"] <= 5 * 2000 + 5

    from consumers.writer.service import build_writer, close_writer, start_writer

    settings = big.settings
    ensure_topics(settings.kafka, pipeline_topics(settings))
    with open_control_store(settings) as control:
        now = time.time()
        control.compare_and_set(PhaseState(phase=2, epoch=1, updated_at=now, updated_by="test", reason="t"),
                                HistoryEntry(1, now, "test", 1, 2, "t"))
        writer = build_writer(settings, control)
        start_writer(writer)
        thread = threading.Thread(target=writer.run, daemon=True)
        thread.start()
        try:
            [repaired], _ = reconcile_tables(settings, [big.source], options=RangeOptions(settle_s=0),
                                             repair=True, record=False)
        finally:
            writer.stop_event.set()
            thread.join(30)
            close_writer(writer)
    assert repaired["repair"]["published"] == 5 and repaired["repair"]["applied"]
    assert repaired["repair"]["remaining"] == 0 and repaired["ok"]
    [after], _ = reconcile_tables(settings, [big.source], options=RangeOptions(settle_s=0), record=False)
    assert after["ok"] and after["differences"] == [] and after["dynamodb_items"] == big.rows
    item = dynamodb.get_item(TableName=big.target, Key={"pk": {"S": f"BIG#{big.rows + 5}"}},
                             ConsistentRead=True)["Item"]
    assert item["_deleted"] == {"BOOL": True}, "the extra row is deleted by a tombstone, not removed blindly"

"""Reconciliation on the real stack: equal tables pass, a divergent item is found and named."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import pytest

from replicator.backfill.source import SnapshotSource
from replicator.control import names, open_control_store
from replicator.mapping.mapper import TableMapper
from replicator.mapping.names import DELETED_ATTR, VERSION_ATTR
from replicator.settings import load_settings
from validators.reconcile import reconcile_table

pytestmark = pytest.mark.integration


@pytest.fixture()
def mirrored(mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str], dynamodb: Any) -> dict[str, Any]:
    """A MySQL table and a DynamoDB table holding the same rows, plus a tombstone."""
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(50), score DECIMAL(6,2), "
                    "hash BINARY(4), seen DATETIME(6))")
        cur.executemany("INSERT INTO users VALUES (%s, %s, %s, %s, %s)",
                        [(i, f"u{i}@x", f"{i}.50", b"\x01\x00", "2024-05-06 07:08:09.000001")
                         for i in range(1, 51)])
    settings = load_settings(tables=[{"source": f"{mysql_db}.users", "key": {"pk": "USER#{id}"}}])
    mapping = settings.tables[0]
    target = settings.dynamodb.table_prefix + mapping.target_name
    dynamodb.create_table(TableName=target, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    with SnapshotSource(settings.mysql) as src:
        shape = src.table_shape(mysql_db, "users")
        rows = src.read_chunk(shape, None, 1000).rows
    mapper = TableMapper(mapping, shape.columns, shape.pk)
    for row in rows:
        dynamodb.put_item(TableName=target, Item=mapper.to_item(row, metadata={VERSION_ATTR: {"N": "1"}}))
    dynamodb.put_item(TableName=target, Item={"pk": {"S": "USER#999"}, DELETED_ATTR: {"BOOL": True}})
    return {"settings": settings, "mapping": mapping, "target": target, "mapper": mapper, "rows": rows}


def test_identical_tables_reconcile_with_tombstones_treated_as_absent(mirrored: dict[str, Any],
                                                                     dynamodb: Any) -> None:
    with SnapshotSource(mirrored["settings"].mysql) as src:
        report = reconcile_table(mirrored["settings"], mirrored["mapping"], src, dynamodb)
    assert report.ok and (report.mysql_rows, report.dynamodb_items, report.tombstones) == (50, 50, 1)


def test_a_changed_attribute_and_a_missing_item_are_reported(
        mirrored: dict[str, Any], dynamodb: Any, isolated_env: dict[str, str], tmp_path: Any) -> None:
    target = mirrored["target"]
    dynamodb.update_item(TableName=target, Key={"pk": {"S": "USER#7"}},
                         UpdateExpression="SET email = :e", ExpressionAttributeValues={":e": {"S": "wrong"}})
    dynamodb.delete_item(TableName=target, Key={"pk": {"S": "USER#8"}})
    with SnapshotSource(mirrored["settings"].mysql) as src:
        report = reconcile_table(mirrored["settings"], mirrored["mapping"], src, dynamodb)
    assert [(d.key, d.kind, sorted(d.fields)) for d in report.differences] == [
        ("id=7", "different", ["email"]), ("id=8", "missing_in_dynamodb", [])]

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"tables: [{{source: {mirrored['mapping'].source}, key: {{pk: 'USER#{{id}}'}}}}]\n")
    res = subprocess.run([sys.executable, "-m", "replicator.cli", "reconcile", "--config", str(cfg),
                          "--settle-s", "0"], env=isolated_env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert res.returncode == 1
    assert "Data validation failed" in res.stderr
    assert "email: mysql='u7@x' dynamodb='wrong'" in res.stdout
    # Every key compared is a validation for the phase 3 -> 4 gate: 48 passed, 2 failed.
    with open_control_store(mirrored["settings"]) as store:
        now = time.time()
        counts = (store.window_sum(names.VALIDATION_PASSED, now - 600, now),
                  store.window_sum(names.VALIDATION_FAILED, now - 600, now))
    assert counts == (48, 2)


def test_a_table_with_the_default_key_is_compared_row_by_row(
        mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str], dynamodb: Any) -> None:
    # Regression: without the primary key the mapper gave every row the same key text,
    # and a whole table compared as a single row.
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE orders (id BIGINT PRIMARY KEY, total DECIMAL(8,2))")
        cur.executemany("INSERT INTO orders VALUES (%s, %s)", [(i, f"{i}.00") for i in range(1, 21)])
    settings = load_settings(tables=[{"source": f"{mysql_db}.orders"}])
    mapping = settings.tables[0]
    target = settings.dynamodb.table_prefix + mapping.target_name
    dynamodb.create_table(TableName=target, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}])
    for i in range(1, 20):  # id 20 is missing on purpose
        dynamodb.put_item(TableName=target, Item={"id": {"N": str(i)}, "total": {"N": f"{i}.00"}})
    with SnapshotSource(settings.mysql) as src:
        report = reconcile_table(settings, mapping, src, dynamodb)
    assert (report.mysql_rows, report.dynamodb_items) == (20, 19)
    assert [(d.key, d.kind) for d in report.differences] == [("id=20", "missing_in_dynamodb")]

"""Full-table reconciliation: every MySQL row against its DynamoDB item, through the mapping.

MySQL is read in consistent primary-key chunks (the backfill's reader, so values come out
exactly as the pipeline carries them); DynamoDB with a parallel scan, tombstones treated as
absent, each item mapped back to a row with the same :class:`TableMapper` the writer used.
While writes go on, a difference can be a change still in flight: :func:`reconcile_table`
re-reads the differing keys after ``settle_s`` and reports only the ones that persist.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

from replicator.adapters.dynamodb import dynamo_errors
from replicator.backfill.source import SnapshotSource
from replicator.catalog import TableShape
from replicator.control import ControlStore, names
from replicator.diff import Difference, describe, diff_tables
from replicator.events import Row, Value
from replicator.mapping.mapper import TableMapper
from replicator.mapping.names import DELETED_ATTR
from replicator.settings import Settings, TableMapping

log = structlog.get_logger("reconcile")


@dataclass(frozen=True)
class TableReport:
    table: str
    mysql_rows: int
    dynamodb_items: int
    tombstones: int
    differences: list[Difference]

    @property
    def ok(self) -> bool:
        return not self.differences

    @property
    def compared(self) -> int:
        """Keys compared: every row present on either side."""
        extra = sum(1 for d in self.differences if d.kind == "extra_in_dynamodb")
        return self.mysql_rows + extra


def read_mysql(src: SnapshotSource, shape: TableShape, mapper: TableMapper,
               chunk_rows: int = 5000) -> dict[str, Row]:
    rows: dict[str, Row] = {}
    cursor: list[Value] | None = None
    while True:
        chunk = src.read_chunk(shape, cursor, chunk_rows)
        if not chunk.rows:
            return rows
        for row in chunk.rows:
            # the same projection as TableMapper.to_row: mapped columns only, in column order
            rows[mapper.key_text(row)] = {c: row.get(c) for c in mapper.attributes}
        cursor = [chunk.rows[-1][k] for k in shape.pk]


def scan_items(client: Any, table: str, segments: int = 4) -> Iterator[dict[str, Any]]:
    """Every item of a DynamoDB table (consistent reads, parallel segments)."""

    def segment(n: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": table, "Segment": n, "TotalSegments": segments,
                                  "ConsistentRead": True}
        while True:
            with dynamo_errors("scanning the table", table):
                page = client.scan(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    with ThreadPoolExecutor(segments) as pool:
        for items in pool.map(segment, range(segments)):
            yield from items


def read_dynamodb(client: Any, table: str, mapper: TableMapper) -> tuple[dict[str, Row], int]:
    rows: dict[str, Row] = {}
    tombstones = 0
    for item in scan_items(client, table):
        if item.get(DELETED_ATTR, {}).get("BOOL"):
            tombstones += 1
            continue
        row = mapper.to_row(item)
        rows[mapper.key_text(row)] = row
    return rows, tombstones


def reconcile_table(settings: Settings, mapping: TableMapping, src: SnapshotSource, client: Any, *,
                    settle_s: float = 0.0, sleep: Callable[[float], None] = time.sleep,
                    record: ControlStore | None = None) -> TableReport:
    """Compare one table; with ``record``, count each key compared as a validation for the gates."""
    shape = src.table_shape(mapping.database, mapping.table)
    mapper = TableMapper(mapping, shape.columns, shape.pk)
    mapper.validate()
    target = settings.dynamodb.table_prefix + mapping.target_name
    mysql = read_mysql(src, shape, mapper)
    dynamo, tombstones = read_dynamodb(client, target, mapper)
    diffs = diff_tables(mapping.source, mysql, dynamo)
    if diffs and settle_s > 0:
        # Give in-flight changes time to land, then compare again: a real divergence stays.
        sleep(settle_s)
        mysql = read_mysql(src, shape, mapper)
        dynamo, tombstones = read_dynamodb(client, target, mapper)
        diffs = diff_tables(mapping.source, mysql, dynamo)
    for d in diffs[:100]:
        log.warning("data_validation_failed", marker="Data validation failed", table=mapping.source,
                    key=d.key, kind=d.kind, diff=describe(d))
    report = TableReport(mapping.source, len(mysql), len(dynamo), tombstones, diffs)
    if record is not None:
        record.incr_many({names.VALIDATION_PASSED: report.compared - len(diffs),
                          names.VALIDATION_FAILED: len(diffs)})
    return report

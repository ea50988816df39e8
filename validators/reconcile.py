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
from replicator.mapping.conditional import owned_by
from replicator.mapping.embedded import EmbeddedMapper, live_entries
from replicator.mapping.mapper import Item, TableMapper
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


def key_text(key: Item) -> str:
    """A DynamoDB item key as text, for naming where an embedded child was looked for."""
    return ",".join(f"{name}={next(iter(av.values()))}" for name, av in sorted(key.items()))


def read_dynamodb(client: Any, table: str, mapper: TableMapper) -> tuple[dict[str, Row], int]:
    rows: dict[str, Row] = {}
    tombstones = 0
    for item in scan_items(client, table):
        if not owned_by(item, mapper.table):
            continue
        if item.get(DELETED_ATTR, {}).get("BOOL"):
            tombstones += 1
            continue
        row = mapper.to_row(item)
        rows[mapper.key_text(row)] = row
    return rows, tombstones


def read_mysql_children(src: SnapshotSource, shape: TableShape, embedded: EmbeddedMapper,
                        chunk_rows: int = 5000) -> dict[str, Row]:
    """An embedded table's rows, each named by its key and the parent item it belongs in."""
    rows: dict[str, Row] = {}
    cursor: list[Value] | None = None
    mapper = embedded.child
    while True:
        chunk = src.read_chunk(shape, cursor, chunk_rows)
        if not chunk.rows:
            return rows
        for row in chunk.rows:
            where = key_text(embedded.item_key(row))
            rows[f"{mapper.key_text(row)} in {where}"] = {c: row.get(c) for c in mapper.attributes}
        cursor = [chunk.rows[-1][k] for k in shape.pk]


def read_dynamodb_children(client: Any, table: str, embedded: EmbeddedMapper) -> tuple[dict[str, Row], int]:
    """Every live entry of the embedded table, in whichever parent item (or item shell) it is."""
    rows: dict[str, Row] = {}
    tombstones = 0
    key_names = [a.name for a in embedded.parent.key_attributes]
    for item in scan_items(client, table):
        if not owned_by(item, embedded.parent.table):
            continue
        entries = item.get(embedded.attribute, {}).get("M", {})
        live = live_entries(item, embedded.attribute)
        tombstones += len(entries) - len(live)
        where = key_text({k: item[k] for k in key_names})
        for entry in live.values():
            row = embedded.to_row(entry)
            rows[f"{embedded.child.key_text(row)} in {where}"] = row
    return rows, tombstones


def reconcile_table(settings: Settings, mapping: TableMapping, src: SnapshotSource, client: Any, *,
                    settle_s: float = 0.0, sleep: Callable[[float], None] = time.sleep,
                    record: ControlStore | None = None) -> TableReport:
    """Compare one table; with ``record``, count each key compared as a validation for the gates.

    An embedded table is compared entry by entry: each row against the entry of the parent item
    its ``embed.on`` columns name (a child in the wrong item is missing there and extra elsewhere).
    """
    shape = src.table_shape(mapping.database, mapping.table)
    mapper = TableMapper(mapping, shape.columns, shape.pk)
    mapper.validate()
    if mapping.embed is not None:
        parent = settings.table(mapping.embed.parent)
        assert parent is not None  # the settings refuse an embed into an unmapped table
        pshape = src.table_shape(parent.database, parent.table)
        embedded = EmbeddedMapper(mapper, TableMapper(parent, pshape.columns, pshape.pk))
        embedded.validate()
        target = settings.dynamodb.table_prefix + parent.target_name

        def read() -> tuple[dict[str, Row], dict[str, Row], int]:
            mysql = read_mysql_children(src, shape, embedded)
            return mysql, *read_dynamodb_children(client, target, embedded)
    else:
        target = settings.dynamodb.table_prefix + mapping.target_name

        def read() -> tuple[dict[str, Row], dict[str, Row], int]:
            return read_mysql(src, shape, mapper), *read_dynamodb(client, target, mapper)

    mysql, dynamo, tombstones = read()
    diffs = diff_tables(mapping.source, mysql, dynamo)
    if diffs and settle_s > 0:
        # Give in-flight changes time to land, then compare again: a real divergence stays.
        sleep(settle_s)
        mysql, dynamo, tombstones = read()
        diffs = diff_tables(mapping.source, mysql, dynamo)
    for d in diffs[:100]:
        log.warning("data_validation_failed", marker="Data validation failed", table=mapping.source,
                    key=d.key, kind=d.kind, diff=describe(d))
    report = TableReport(mapping.source, len(mysql), len(dynamo), tombstones, diffs)
    if record is not None:
        record.incr_many({names.VALIDATION_PASSED: report.compared - len(diffs),
                          names.VALIDATION_FAILED: len(diffs)})
    return report

"""Reconciliation by checksum ranges against bare full scans of both stores, in the same run.

    checksum:  replicator reconcile's method on a clean table (MySQL folds ranges on the server,
               DynamoDB scanned once in parallel segments and folded into the same ranges)
    full:      the previous method (every row of both stores read and compared in Python)
    baseline:  a bare full read of both stores one after the other, nothing compared: keyset
               SELECT of every row of MySQL, then a parallel Scan of the DynamoDB table

The DynamoDB table is filled directly (BatchWriteItem) with the mapped items. BENCH_RECONCILE_ROWS
sets the size (default 50,000 so that ``make bench`` fits its budget; the issue's figure is
BENCH_RECONCILE_ROWS=1000000). Reports rows/s of each and checksum/baseline (target >= 2).
"""

from __future__ import annotations

import os
import resource
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.bench_backfill import admin, create_table, dynamo, make_target
from bench.deadline import Deadline
from replicator.backfill.source import SnapshotSource
from replicator.mapping.mapper import TableMapper
from replicator.mapping.names import VERSION_ATTR
from replicator.settings import load_settings
from validators.ranges import RangeReader
from validators.reconcile import reconcile_table, scan_items
from validators.reconcile_ranges import RangeOptions, RangeReconciler

ROWS = int(os.environ.get("BENCH_RECONCILE_ROWS", "50000"))
LOAD_DEADLINE_S = 60 + ROWS / 200
PASS_DEADLINE_S = 60 + ROWS / 500
BUDGET_S = LOAD_DEADLINE_S + 3 * PASS_DEADLINE_S + 120


def fill(client: Any, target: str, items: list[dict[str, Any]], deadline: Deadline) -> None:
    def put(batch: list[dict[str, Any]]) -> None:
        request = {target: [{"PutRequest": {"Item": i}} for i in batch]}
        while request:
            deadline.check(f"{len(items)} items loaded")
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, [items[i:i + 25] for i in range(0, len(items), 25)]))


def peak_rss_mb() -> float:
    """This process's peak resident set so far (MB): the full compare holds both tables."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bare_scan(settings: Any, shape: Any, client: Any, target: str) -> int:
    """Every row of MySQL (keyset chunks), then every item of DynamoDB; nothing compared."""
    n = 0
    with SnapshotSource(settings.mysql) as src:
        cursor = None
        while True:
            chunk = src.read_chunk(shape, cursor, 5000)
            if not chunk.rows:
                break
            n += len(chunk.rows)
            cursor = [chunk.rows[-1][k] for k in shape.pk]
    for _ in scan_items(client, target):
        n += 1
    return n


def main() -> dict[str, Any]:
    import bench.bench_backfill as backfill

    backfill.ROWS = ROWS  # create_table's size
    db = f"bench_rc_{uuid.uuid4().hex[:8]}"
    prefix = f"{db}-"
    saved = os.environ.get("REPLICATOR_DYNAMODB__TABLE_PREFIX")
    os.environ["REPLICATOR_DYNAMODB__TABLE_PREFIX"] = prefix  # the environment wins over arguments
    create_table(db)
    settings = load_settings(tables=[{"source": f"{db}.items", "key": {"pk": "ITEM#{id}"}}],
                             log={"level": "warning"})
    client = dynamo(settings)
    target = prefix + "items"
    make_target(client, target)
    try:
        mapping = settings.tables[0]
        with SnapshotSource(settings.mysql) as src:
            shape = src.table_shape(db, "items")
            mapper = TableMapper(mapping, shape.columns, shape.pk)
            items, cursor = [], None
            while True:
                chunk = src.read_chunk(shape, cursor, 20_000)
                if not chunk.rows:
                    break
                items += [mapper.to_item(r, metadata={VERSION_ATTR: {"N": "1"}}) for r in chunk.rows]
                cursor = [chunk.rows[-1]["id"]]
        t0 = time.monotonic()
        fill(client, target, items, Deadline(LOAD_DEADLINE_S, f"DynamoDB Local to take {ROWS} items"))
        load_s = time.monotonic() - t0
        del items

        t0 = time.monotonic()
        read = bare_scan(settings, shape, client, target)
        baseline_s = time.monotonic() - t0
        assert read == 2 * ROWS, f"the bare scan read {read} rows and items, not {2 * ROWS}"

        reader = RangeReader(settings.mysql)
        reader.start()
        try:
            with SnapshotSource(settings.mysql) as src:
                rss0 = peak_rss_mb()
                t0 = time.monotonic()
                report = RangeReconciler(settings, mapping, shape, src, reader, client,
                                         RangeOptions(settle_s=0)).run()
                checksum_s = time.monotonic() - t0
                checksum_mb = peak_rss_mb() - rss0
                assert report.ok and report.mysql_rows == ROWS, report
                rss1 = peak_rss_mb()
                t0 = time.monotonic()
                full = reconcile_table(settings, mapping, src, client)
                full_s = time.monotonic() - t0
                full_mb = peak_rss_mb() - rss1
                assert full.ok
        finally:
            reader.close()
    finally:
        if saved is None:
            os.environ.pop("REPLICATOR_DYNAMODB__TABLE_PREFIX", None)
        else:
            os.environ["REPLICATOR_DYNAMODB__TABLE_PREFIX"] = saved
        client.delete_table(TableName=target)
        conn = admin()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        conn.close()
    figures = {
        "rows": ROWS,
        "checksum_rows_per_s": round(ROWS / checksum_s),
        "full_compare_rows_per_s": round(ROWS / full_s),
        "bare_scan_rows_per_s": round(ROWS / baseline_s),
        "ratio_checksum_vs_bare_scan": round(baseline_s / checksum_s, 2),
        "ratio_checksum_vs_full_compare": round(full_s / checksum_s, 2),
        "target_ratio": 2.0,
        "ranges": report.ranges,
        "mysql_rows_fetched": report.mysql_rows_fetched,
        "load_items_per_s": round(ROWS / load_s),
        "checksum_peak_rss_growth_mb": round(checksum_mb, 1),
        "full_compare_peak_rss_growth_mb": round(full_mb, 1),
    }
    print(f"reconcile of a clean {ROWS}-row table: checksum {checksum_s:.1f} s, "
          f"full compare {full_s:.1f} s, bare scan of both stores {baseline_s:.1f} s -> "
          f"{figures['ratio_checksum_vs_bare_scan']}x the bare scan (target >= 2), "
          f"{figures['ratio_checksum_vs_full_compare']}x the full compare")
    return figures


if __name__ == "__main__":
    main()

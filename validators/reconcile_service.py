"""Wiring of ``replicator reconcile``: each table by checksum ranges (or in full), then the repair.

Returns one JSON-able document per table; the command only renders them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from replicator.adapters.dynamodb import dynamodb_client
from replicator.backfill.source import SnapshotSource
from replicator.control import open_control_store
from replicator.diff import Difference
from replicator.errors import ConfigError
from replicator.mapping.mapper import TableMapper
from replicator.settings import Settings, TableMapping
from validators.ranges import RangeReader
from validators.reconcile import reconcile_table
from validators.reconcile_ranges import Progress, RangeOptions, RangeReconciler, reconcile_ranges
from validators.repair import repair as send_repair

TaskFactory = Callable[[str], tuple[Progress, Callable[[], None]]]  # table -> (update, done)


def _differences(diffs: Sequence[Difference]) -> list[dict[str, Any]]:
    return [{"key": d.key, "kind": d.kind, "fields": sorted(d.fields)} for d in diffs]


def reconcile_tables(settings: Settings, sources: Sequence[str], *, method: str = "checksum",
                     options: RangeOptions | None = None, repair: bool = False, record: bool = True,
                     task: TaskFactory | None = None
                     ) -> tuple[list[dict[str, Any]], dict[str, list[Difference]]]:
    """Reconcile ``sources`` (mapped tables); the per-table reports and their differences."""
    options = options or RangeOptions()
    mappings: list[TableMapping] = []
    for s in sources:
        m = settings.table(s)
        if m is None:
            raise ConfigError(f"--table {s} is not a mapped table")
        mappings.append(m)
    if not mappings:
        raise ConfigError("no tables are mapped: add tables[] to the configuration")
    client = dynamodb_client(settings.dynamodb)
    docs: list[dict[str, Any]] = []
    found: dict[str, list[Difference]] = {}
    reader = RangeReader(settings.mysql)
    with SnapshotSource(settings.mysql) as src, open_control_store(settings) as store:
        reader.start()
        try:
            for m in mappings:
                shape = src.table_shape(m.database, m.table)
                mapper = TableMapper(m, shape.columns, shape.pk)
                why = RangeReconciler.supports(mapper, shape) if method == "checksum" else "--method full"
                if why:
                    full = reconcile_table(settings, m, src, client, settle_s=options.settle_s,
                                           record=store if record else None)
                    docs.append({"table": m.source, "method": "full", "why_full": why, "ok": full.ok,
                                 "mysql_rows": full.mysql_rows, "dynamodb_items": full.dynamodb_items,
                                 "tombstones": full.tombstones, "mysql_rows_fetched": full.mysql_rows,
                                 "differences": _differences(full.differences)})
                    found[m.source] = full.differences
                    continue
                update, done = task(m.source) if task is not None else (None, lambda: None)
                reader.rows_fetched = 0
                try:
                    report = reconcile_ranges(settings, m, src, reader, client, options,
                                              record=store if record else None, progress=update)
                finally:
                    done()
                doc: dict[str, Any] = {
                    "table": m.source, "method": report.method, "ok": report.ok,
                    "mysql_rows": report.mysql_rows, "dynamodb_items": report.dynamodb_items,
                    "tombstones": report.tombstones, "ranges": report.ranges,
                    "ranges_differing": report.ranges_differing,
                    "mysql_rows_fetched": report.mysql_rows_fetched,
                    "dynamodb_items_refetched": report.dynamodb_items_refetched,
                    "seconds": round(report.seconds, 3), "differences": _differences(report.differences)}
                if repair and report.found:
                    result = send_repair(settings, shape, mapper, report.found)
                    checker = RangeReconciler(settings, m, shape, src, reader, client, options)
                    still = checker.recheck(report.found) if result.applied else report.found
                    doc["repair"] = {"published": result.published, "version": result.version,
                                     "applied": result.applied, "remaining": len(still)}
                    doc["ok"] = not still
                docs.append(doc)
                found[m.source] = report.differences
        finally:
            reader.close()
    return docs, found

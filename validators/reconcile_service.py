"""Wiring of ``replicator reconcile``: each table by checksum ranges (or in full), then the repair.

Returns one JSON-able document per table; the command only renders them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from replicator.adapters.dynamodb import dynamodb_client
from replicator.backfill.source import SnapshotSource
from replicator.control import ControlStore, names, open_control_store
from replicator.diff import Difference
from replicator.errors import ConfigError, ControlStoreUnavailable
from replicator.mapping.mapper import TableMapper
from replicator.settings import Settings, TableMapping
from validators.metrics import ReconcileMetrics
from validators.ranges import RangeReader
from validators.reconcile import reconcile_table
from validators.reconcile_ranges import Progress, RangeOptions, RangeReconciler, reconcile_ranges
from validators.repair import repair as send_repair

TaskFactory = Callable[[str], tuple[Progress, Callable[[], None]]]  # table -> (update, done)

log = structlog.get_logger("reconcile")


class ProgressMarker:
    """The reconciliation's progress in the control store (``reconcile.<table>``) for
    ``replicator status``: written at most every ``interval_s`` and once at the end."""

    def __init__(self, store: ControlStore, source: str, interval_s: float = 2.0,
                 metrics: ReconcileMetrics | None = None) -> None:
        self._store, self._source, self._interval_s = store, source, interval_s
        self._metrics = metrics
        self._started = time.time()
        self._written = 0.0
        self._doc: dict[str, Any] = {}

    def chain(self, then: Progress | None) -> Progress:
        def update(stage: str, done: int, total: int | None) -> None:
            self._doc = {"stage": stage, "done": done, "total": total}
            if self._metrics is not None:
                self._metrics.progress.labels(self._source, stage).set(done)
            if time.monotonic() - self._written >= self._interval_s:
                self._put(finished=False)
            if then is not None:
                then(stage, done, total)

        return update

    def finish(self, ok: bool, differences: int) -> None:
        self._put(finished=True, ok=ok, differences=differences)

    def _put(self, **extra: Any) -> None:
        self._written = time.monotonic()
        try:
            self._store.put_marker(names.reconcile_marker(self._source), {
                "table": self._source, **self._doc, "started_at": self._started, "at": time.time(), **extra})
        except ControlStoreUnavailable as exc:
            log.warning("reconcile_progress_not_written", table=self._source, error=str(exc))


def _count(metrics: ReconcileMetrics, doc: dict[str, Any], diffs: Sequence[Difference]) -> None:
    table = doc["table"]
    metrics.rows.labels(table, "mysql").inc(int(doc.get("mysql_rows") or 0))
    metrics.rows.labels(table, "dynamodb").inc(int(doc.get("dynamodb_items") or 0))
    for d in diffs:
        metrics.differences.labels(table, d.kind).inc()
    metrics.tables.labels("equal" if doc["ok"] else "different").inc()


def _differences(diffs: Sequence[Difference]) -> list[dict[str, Any]]:
    return [{"key": d.key, "kind": d.kind, "fields": sorted(d.fields)} for d in diffs]


class RunMarker:
    """The tables a reconciliation has finished, in the control store (``reconcile.run``), so that
    ``--resume`` after a crash or a stop goes on with the tables not done yet (same table list)."""

    def __init__(self, store: ControlStore, sources: Sequence[str], resume: bool) -> None:
        self._store = store
        prior = store.get_marker(names.RECONCILE_RUN) if resume else None
        if prior is not None and list(prior.get("tables", [])) == list(sources):
            self.doc: dict[str, Any] = prior
        else:
            if resume and prior is not None:
                log.info("reconcile_not_resumed", reason="another table list", before=prior.get("tables"))
            self.doc = {"tables": list(sources), "started_at": time.time(), "done": {}}
            self._put()

    def done(self, source: str) -> dict[str, Any] | None:
        report = self.doc["done"].get(source)
        return dict(report) if report is not None else None

    def finish(self, source: str, report: dict[str, Any]) -> None:
        self.doc["done"][source] = report
        self._put()

    def _put(self) -> None:
        try:
            self._store.put_marker(names.RECONCILE_RUN, self.doc)
        except ControlStoreUnavailable as exc:  # the run goes on; only a resume would redo more
            log.warning("reconcile_run_not_written", error=str(exc))


def reconcile_tables(settings: Settings, sources: Sequence[str], *, method: str = "checksum",
                     options: RangeOptions | None = None, repair: bool = False, record: bool = True,
                     task: TaskFactory | None = None, resume: bool = False,
                     metrics: ReconcileMetrics | None = None,
                     ) -> tuple[list[dict[str, Any]], dict[str, list[Difference]]]:
    """Reconcile ``sources`` (mapped tables); the per-table reports and their differences.

    ``resume``: skip the tables an earlier run of the same table list finished (their reports
    are taken from it, marked ``resumed``)."""
    metrics = metrics or ReconcileMetrics()
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
        run = RunMarker(store, [m.source for m in mappings], resume)
        try:
            for m in mappings:
                earlier = run.done(m.source)
                if earlier is not None:
                    docs.append({**earlier, "resumed": True})
                    found[m.source] = []
                    metrics.tables.labels("resumed").inc()
                    continue
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
                    if repair and full.differences:
                        docs[-1]["repair"] = {"published": 0, "version": None, "applied": False,
                                              "remaining": len(full.differences),
                                              "why": f"not repaired: compared in full ({why})"}
                    found[m.source] = full.differences
                    _count(metrics, docs[-1], full.differences)
                    run.finish(m.source, docs[-1])
                    continue
                update, done = task(m.source) if task is not None else (None, lambda: None)
                marker = ProgressMarker(store, m.source, metrics=metrics)
                reader.rows_fetched = 0
                try:
                    report = reconcile_ranges(settings, m, src, reader, client, options,
                                              record=store if record else None,
                                              progress=marker.chain(update))
                finally:
                    done()
                marker.finish(report.ok, len(report.found))
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
                _count(metrics, doc, report.differences)
                run.finish(m.source, doc)
        finally:
            reader.close()
    return docs, found

"""The backfill loop: consistent chunks -> ``op: "r"`` events -> Kafka, resumable and paced.

Per table: read the next chunk in primary-key order from one consistent snapshot together
with the binlog position that splits it from the stream and the fence row's generation
(:mod:`replicator.backfill.source`); give each row that position's snapshot version in that
generation; publish the rows to the table's topic and wait for Kafka's acknowledgement; only
then persist the cursor (the chunk's last key) in the control store. A kill -9 at any instant
therefore re-publishes at most one chunk, whose rows carry the same or an older version than
what is already applied: harmless.

When every table is copied and the writer has applied the last snapshot event, the
``backfill.complete`` marker is set; the phase 2 -> 3 gate reads it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from replicator.adapters import kafka
from replicator.adapters.dynamodb import dynamodb_client
from replicator.backfill.absence import AbsenceSweep, copy_order, swept_tables
from replicator.backfill.publish import SnapshotPublisher, wait_until_applied
from replicator.backfill.source import SnapshotSource
from replicator.backfill.throttle import Throttle
from replicator.catalog import TableShape
from replicator.control import ControlStore, names, open_control_store
from replicator.errors import ConfigError, TableVanishedError, TransientError
from replicator.events import (
    ChangeEvent,
    Position,
    Row,
    TxInfo,
    decode_value,
    encode_value,
    schema_fingerprint,
    snapshot_version,
)
from replicator.mapping.foreign_keys import CascadeGraph
from replicator.settings import Settings
from replicator.topics import dead_letter_topic, pipeline_topics, table_topic

log = structlog.get_logger("backfill")



class BackfillMetrics:
    """The backfill's Prometheus metrics, on an injected registry (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        per_table = ["table"]
        self.rows = Counter("replicator_backfill_rows_total", "Snapshot rows published to Kafka",
                            per_table, registry=r)
        self.chunks = Counter("replicator_backfill_chunks_total", "Snapshot chunks published",
                              per_table, registry=r)
        self.dead = Counter("replicator_backfill_dead_letter_total",
                            "Snapshot rows sent to the dead-letter topic", per_table, registry=r)
        self.estimate = Gauge("replicator_backfill_rows_estimate", "Rows to copy, from table statistics",
                              per_table, registry=r)
        self.rate = Gauge("replicator_backfill_rows_per_second", "Recent backfill rate", per_table,
                          registry=r)
        self.pause = Gauge("replicator_backfill_throttle_pause_seconds",
                           "Current adaptive pause between chunks", registry=r)


@dataclass(frozen=True)
class BackfillOptions:
    tables: tuple[str, ...] = ()  # "db.table"; empty = every mapped table
    restart: bool = False
    chunk_rows: int = 1000
    max_rows_per_s: float = 5000.0  # 0 = no cap
    max_query_s: float = 0.5
    max_lag_s: float = 10.0
    wait_for_writer: bool = True
    wait_timeout_s: float = 0.0  # 0 = as long as it takes


@dataclass
class TableProgress:
    source: str
    total_estimate: int
    done: int = 0
    chunks: int = 0
    dead_lettered: int = 0
    complete: bool = False
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    rate: float = 0.0
    # highest acknowledged snapshot-event offset per (topic, partition), across runs
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)


ProgressHook = Callable[[TableProgress], None]


def _marker(p: TableProgress, cursor: list[Any] | None, finished: bool) -> dict[str, Any]:
    return {"cursor": cursor, "done": p.done, "total_estimate": p.total_estimate, "complete": p.complete,
            "dead_lettered": p.dead_lettered, "error": p.error, "started_at": p.started_at,
            "finished_at": time.time() if finished else None,
            "offsets": {f"{t}:{part}": off for (t, part), off in p.offsets.items()}}


def _offsets(marker: dict[str, Any] | None) -> dict[tuple[str, int], int]:
    raw = (marker or {}).get("offsets") or {}
    return {(k.rsplit(":", 1)[0], int(k.rsplit(":", 1)[1])): int(v) for k, v in raw.items()}


class Backfill:
    """One run of the backfill over the selected tables. No I/O until :meth:`run`."""

    def __init__(self, settings: Settings, opts: BackfillOptions, *, stop: threading.Event | None = None,
                 on_progress: ProgressHook | None = None,
                 sleep: Callable[[float], object] | None = None,
                 metrics: BackfillMetrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or BackfillMetrics()
        self.opts = opts
        self.stop = stop or threading.Event()
        self.on_progress = on_progress or (lambda _p: None)
        self._sleep: Callable[[float], object] = sleep or self.stop.wait
        self.tables = self._select_tables()
        # After run(): True once the writer has applied every snapshot event, False when the
        # wait gave up, None when it was not attempted (tables incomplete, --no-wait, stopped).
        self.applied: bool | None = None

    def _select_tables(self) -> list[str]:
        mapped = [t.source for t in self.settings.tables]
        if not mapped:
            raise ConfigError("no tables are mapped: add tables[] to the configuration")
        chosen = list(self.opts.tables) or mapped
        unknown = [t for t in chosen if t not in mapped]
        if unknown:
            raise ConfigError(f"--table {unknown[0]} is not a mapped table; mapped: {', '.join(mapped)}")
        return chosen

    # ----------------------------------------------------------------- run

    def run(self) -> list[TableProgress]:
        results: list[TableProgress] = []
        with (open_control_store(self.settings) as store,
              SnapshotSource(self.settings.mysql, fence_table=self.settings.cutover.fence_table) as src):
            # Check every table before copying any, so a bad one stops the run up front.
            shapes = [src.table_shape(*t.split(".")) for t in self.tables]
            graph = self._cascade_graph(src)
            order = copy_order([s.source for s in shapes], graph)  # a cascade's parents first
            shapes.sort(key=lambda s: order.index(s.source))
            # The reader creates the same topics; both are idempotent.
            kafka.ensure_topics(self.settings.kafka, pipeline_topics(self.settings))
            publisher = SnapshotPublisher(self.settings)
            publisher.start()
            try:
                for shape in shapes:
                    if self.stop.is_set():
                        break
                    results.append(self._copy_table(store, src, publisher, shape))
            finally:
                publisher.close()
            if not self.stop.is_set():
                self._finish(store, results, src, graph)
        return results

    def _cascade_graph(self, src: SnapshotSource) -> CascadeGraph:
        """The cascading foreign keys between the mapped tables (:mod:`replicator.backfill.absence`)."""
        mapped = [t.source for t in self.settings.tables]
        # A cascade touching an embedded table is not reproduced through an index (the parent's
        # delete removes its entries; the writer refuses the others): nothing of it to order or sweep.
        embedded = {t.source for t in self.settings.tables if t.embedded}
        fks = [fk for t in self.settings.tables for fk in src.foreign_keys(t.database, t.table)
               if fk.child not in embedded and fk.parent not in embedded]
        return CascadeGraph(fks, mapped)

    def _copy_table(self, store: ControlStore, src: SnapshotSource, pub: SnapshotPublisher,
                    shape: TableShape) -> TableProgress:
        marker_name = names.backfill_marker(shape.source)
        marker = None if self.opts.restart else store.get_marker(marker_name)
        p = TableProgress(shape.source, src.estimate_rows(shape.db, shape.table))
        cursor_json: list[Any] | None = None
        if marker is not None:
            p.done, p.dead_lettered = int(marker.get("done", 0)), int(marker.get("dead_lettered", 0))
            p.started_at = float(marker.get("started_at") or p.started_at)
            cursor_json = marker.get("cursor")
            p.offsets = _offsets(marker)
            if marker.get("complete"):
                p.complete = True
                log.info("backfill_table_already_complete", table=shape.source, rows=p.done)
                self.on_progress(p)
                return p
            log.info("backfill_resuming", table=shape.source, done=p.done, cursor=cursor_json)
        else:
            store.put_marker(marker_name, _marker(p, None, False))
        self.metrics.estimate.labels(shape.source).set(p.total_estimate)
        throttle = Throttle(self.opts.max_rows_per_s, self.opts.max_query_s, self.opts.max_lag_s,
                            sleep=self._sleep)
        topic = table_topic(self.settings.kafka.topic_prefix, shape.source)
        dlq = dead_letter_topic(self.settings.kafka.topic_prefix)
        window: list[tuple[float, int]] = []
        while not self.stop.is_set():
            cursor = [decode_value(v) for v in cursor_json] if cursor_json is not None else None
            try:
                chunk = src.read_chunk(shape, cursor, self.opts.chunk_rows)
                if not chunk.rows:
                    break
                version = snapshot_version(chunk.binlog_file, chunk.binlog_offset, chunk.generation)
                sent, dead = self._publish_chunk(pub, shape, chunk.rows, chunk.binlog_file,
                                                 chunk.binlog_offset, version, topic, dlq)
                pub.flush()
            except TableVanishedError as exc:
                p.error = str(exc)
                log.error("backfill_table_vanished", table=shape.source, error=str(exc))
                store.put_marker(marker_name, _marker(p, cursor_json, True))
                return p
            except TransientError as exc:
                log.warning("backfill_transient_error_retrying", table=shape.source, error=str(exc))
                self._sleep(2.0)
                continue
            for tp, off in pub.acked.items():
                if tp[0] == topic:
                    p.offsets[tp] = max(off, p.offsets.get(tp, -1))
            last = chunk.rows[-1]
            cursor_json = [encode_value(last[k]) for k in shape.pk]
            p.done += sent
            p.dead_lettered += dead
            p.chunks += 1
            self.metrics.rows.labels(shape.source).inc(sent)
            self.metrics.chunks.labels(shape.source).inc()
            store.put_marker(marker_name, _marker(p, cursor_json, False))
            now = time.monotonic()
            window = [(t, n) for t, n in window if now - t < 10] + [(now, sent + dead)]
            p.rate = sum(n for _, n in window) / max(now - window[0][0], 1e-3) if len(window) > 1 else 0.0
            self.metrics.rate.labels(shape.source).set(p.rate)
            self.on_progress(p)
            reason = throttle.observe(chunk.query_s, src.replication_lag_s())
            if reason:
                log.info("backfill_backing_off", table=shape.source, reason=reason, pause_s=throttle.pause_s)
            self.metrics.pause.set(throttle.pause_s)
            throttle.wait(sent + dead)
        if self.stop.is_set():
            return p
        p.complete = True
        store.put_marker(marker_name, _marker(p, cursor_json, True))
        log.info("backfill_table_copied", table=shape.source, rows=p.done, dead_lettered=p.dead_lettered,
                 chunks=p.chunks)
        self.on_progress(p)
        return p

    def _sweep_absent(self, src: SnapshotSource, graph: CascadeGraph) -> bool:
        """The absence sweep of :mod:`replicator.backfill.absence`; whether the writer applied it."""
        swept = swept_tables(graph)
        if not swept:
            return True
        shapes = [src.table_shape(*t.split(".", 1)) for t in swept]
        throttle = Throttle(self.opts.max_rows_per_s, self.opts.max_query_s, self.opts.max_lag_s,
                            sleep=self._sleep)
        sweep = AbsenceSweep(self.settings, src, dynamodb_client(self.settings.dynamodb), graph,
                             keys_per_read=self.opts.chunk_rows, wait_timeout_s=self.opts.wait_timeout_s,
                             stop=self.stop, pace=throttle.wait)
        return sweep.run(shapes).applied

    def _publish_chunk(self, pub: SnapshotPublisher, shape: TableShape, rows: list[Row], file: str,
                       offset: int, version: int, topic: str, dlq: str) -> tuple[int, int]:
        sent = dead = 0
        now_ms = int(time.time() * 1000)
        fingerprint = schema_fingerprint(shape.columns)
        for i, row in enumerate(rows):
            pk = {k: row[k] for k in shape.pk}
            try:
                event = ChangeEvent(
                    op="r", db=shape.db, table=shape.table, pk=pk, before=None, after=row,
                    pos=Position(file, offset, 0, None), version=version, ts_ms=now_ms,
                    tx=TxInfo(f"snapshot:{file}:{offset}", i), schema=fingerprint, columns=shape.columns,
                )
                pub.publish(topic, event.key_bytes(), event.to_json())
                sent += 1
            except (TypeError, ValueError) as exc:
                dead += 1
                self.metrics.dead.labels(shape.source).inc()
                log.warning("backfill_row_dead_lettered", table=shape.source, pk=repr(pk), error=str(exc))
                pub.dead_letter(dlq, shape.source, repr(pk), str(exc), {"version": version})
        return sent, dead

    def _finish(self, store: ControlStore, results: list[TableProgress], src: SnapshotSource,
                graph: CascadeGraph) -> None:
        all_mapped = {t.source for t in self.settings.tables}
        copied: set[str] = set()
        targets: dict[tuple[str, int], int] = {}
        # Tables copied by earlier runs count too: completeness is about every mapped table,
        # and the writer must have applied the snapshot events of every run.
        for source in all_mapped:
            m = store.get_marker(names.backfill_marker(source))
            if m and m.get("complete"):
                copied.add(source)
            for tp, off in _offsets(m).items():
                targets[tp] = max(off, targets.get(tp, -1))
        if copied != all_mapped:
            missing = sorted(all_mapped - copied)
            store.put_marker(names.BACKFILL_COMPLETE,
                             {"complete": False, "missing": missing, "at": time.time()})
            log.warning("backfill_incomplete", missing=missing)
            return
        applied = False
        if self.opts.wait_for_writer:
            log.info("backfill_waiting_for_writer", partitions=len(targets))
            applied = self.applied = wait_until_applied(
                self.settings, targets, timeout_s=self.opts.wait_timeout_s, stop=self.stop,
                on_wait=lambda behind: log.debug("backfill_waiting", partitions_behind=behind))
            if applied:
                applied = self.applied = self._sweep_absent(src, graph)
        elif swept_tables(graph):
            log.warning("backfill_absence_not_swept", reason="--no-wait", tables=swept_tables(graph),
                        hint="rows a cascade deleted before their parents were copied may remain in "
                             "DynamoDB: rerun the backfill without --no-wait while the writer runs")
        # "complete" means applied in DynamoDB, not merely published: the 2 -> 3 gate relies on it.
        store.put_marker(names.BACKFILL_COMPLETE, {
            "complete": applied, "tables": sorted(all_mapped), "at": time.time(), "published": True,
        })
        log.info("backfill_complete" if applied else "backfill_published_not_applied",
                 hint=None if applied else "the writer has not applied it yet: rerun to wait for it",
                 tables=sorted(all_mapped))

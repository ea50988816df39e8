"""Wiring of ``replicator run``: the real adapters (binlog, server metadata, Kafka, control
store) injected into a :class:`~replicator.reader.runner.Reader`, the start-up checks, and the
process around it (metrics served, signals).

:func:`create_reader` is what tests and benchmarks use; :func:`run_reader` is the command.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import structlog
from prometheus_client import Counter

from replicator.adapters.binlog import BinlogSource
from replicator.adapters.kafka import ensure_topics
from replicator.adapters.mysql import connect, mysql_errors
from replicator.errors import ConfigError, StatementRejected
from replicator.fence import mysql_generation
from replicator.reader import checks
from replicator.reader.gtid import StartAt
from replicator.reader.heartbeat import HeartbeatPublisher
from replicator.reader.metrics import ReaderMetrics, serve
from replicator.reader.ports import SourceServer
from replicator.reader.runner import Reader, ReaderOptions
from replicator.reader.server import ServerInfo
from replicator.reader.sink import KafkaTransactionalSink
from replicator.reader.start import StartPositions
from replicator.reader.watermark import WatermarkPublisher
from replicator.settings import MySQLSettings, Settings
from replicator.topics import pipeline_topics

__all__ = ["create_reader", "gtid_position_at", "preflight", "run_reader"]

log = structlog.get_logger("replicator.reader")


def preflight(settings: Settings, info: SourceServer) -> None:
    """The fatal start-up conditions (exit 3): binlog settings, grants, keys, FK cascades."""
    mapped = {t.source for t in settings.tables}
    checks.check_binlog_settings(info.binlog_variables())
    checks.check_grants(info.grants(), settings.mysql.user)
    existing, with_pk = info.tables(mapped)
    checks.check_primary_keys(mapped, existing, with_pk)
    checks.check_fk_cascades(mapped, info.foreign_keys(mapped))


def gtid_position_at(cfg: MySQLSettings, file: str, offset: int) -> str:
    """MariaDB's GTID position (``gtid_binlog_pos`` form) at a binlog position; "" on MySQL.

    ``BINLOG_GTID_POS`` reads the binlog file up to ``offset``: once per start, when the start
    position carries no GTID position (the binlog head, ``--from FILE:POS``).
    """
    conn = connect(cfg, read_timeout_s=120.0)
    try:
        with mysql_errors("reading the GTID position of the start", cfg), conn.cursor() as cur:
            cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, offset))
            row = cur.fetchone()
    except StatementRejected as exc:  # MySQL has no BINLOG_GTID_POS: versions only
        log.info("gtid_position_unknown", file=file, offset=offset, error=str(exc))
        return ""
    finally:
        conn.close()
    return str(row[0]) if row and row[0] else ""


def create_reader(settings: Settings, *, start_from: StartAt | None = None,
                  options: ReaderOptions | None = None, metrics: ReaderMetrics | None = None,
                  stop_event: threading.Event | None = None) -> Reader:
    """A reader over the real adapters (not started: ``run()`` or ``start()`` it)."""
    if not settings.tables:
        raise ConfigError("no tables are mapped: add a `tables:` section (source: db.table) to the config")
    info = ServerInfo(settings.mysql)
    mapped = {t.source for t in settings.tables}
    fence = settings.cutover.fence_table
    if fence in mapped:
        raise ConfigError(f"cutover.fence_table {fence!r} is also mapped in tables[]: the fence row is the "
                          "pipeline's own; name another table for it, or remove it from tables[]")
    # The fence table's row events are read with the mapped tables' (they carry the version
    # generation, docs/design.md); the pump turns them into no change event.
    streamed = mapped | {fence}
    opts = options or ReaderOptions()
    m = metrics or ReaderMetrics()

    def source_factory(start: StartAt) -> BinlogSource:
        return BinlogSource(settings.mysql, start, streamed, lambda: info.catalog(streamed),
                            heartbeat_s=opts.heartbeat_s)

    watermark: WatermarkPublisher | None = None
    if opts.watermark_interval_s is not None:
        failures = Counter("replicator_reader_watermark_failures_total",
                           "Applied-watermark markers the control store refused", registry=m.registry)
        watermark = WatermarkPublisher(settings, interval_s=opts.watermark_interval_s,
                                       on_failure=failures.inc)

    def sink_factory() -> KafkaTransactionalSink:
        ensure_topics(settings.kafka, pipeline_topics(settings), timeout_s=opts.kafka_timeout_s)
        sink = KafkaTransactionalSink(settings, on_delivery_error=m.delivery_errors.inc,
                                      timeout_s=opts.kafka_timeout_s,
                                      on_committed=watermark.committed if watermark is not None else None)
        sink.start()
        return sink

    def gtid_at(file: str, offset: int) -> str:
        return gtid_position_at(settings.mysql, file, offset)

    def run_preflight() -> None:
        preflight(settings, info)

    def fence_generation() -> int:
        state = info.fence(fence)
        log.info("fence_read", table=fence, writes_to=state.writes_to, generation=state.generation)
        return mysql_generation(state)

    return Reader(settings, source_factory=source_factory, sink_factory=sink_factory,
                  positions=StartPositions(info.head, info.binlog_files, start_from), options=opts, metrics=m,
                  stop_event=stop_event, preflight=run_preflight,
                  on_lag=HeartbeatPublisher(settings, on_failure=m.heartbeat_failures.inc),
                  watermark=watermark, gtid_at=gtid_at, fence_generation=fence_generation)


def run_reader(settings: Settings, *, start_from: StartAt | None = None, metrics_port: int | None = None,
               options: ReaderOptions | None = None) -> None:
    """``replicator run``: streams until SIGTERM/SIGINT; ``metrics_port`` overrides ``metrics.port``.

    The reader's metrics go into prometheus_client's default registry, which is served.
    """
    port = settings.metrics.port if metrics_port is None else metrics_port
    metrics = serve(port)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("reader_stopping", signal=signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    reader = create_reader(settings, start_from=start_from, metrics=metrics, stop_event=stop, options=options)
    reader.run()

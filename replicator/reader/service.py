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

from replicator.adapters.binlog import BinlogSource
from replicator.adapters.kafka import ensure_topics
from replicator.errors import ConfigError
from replicator.reader import checks
from replicator.reader.gtid import StartAt
from replicator.reader.heartbeat import HeartbeatPublisher
from replicator.reader.metrics import ReaderMetrics, serve
from replicator.reader.ports import SourceServer
from replicator.reader.runner import Reader, ReaderOptions
from replicator.reader.server import ServerInfo
from replicator.reader.sink import KafkaTransactionalSink
from replicator.reader.start import StartPositions
from replicator.settings import Settings
from replicator.topics import pipeline_topics

__all__ = ["create_reader", "preflight", "run_reader"]

log = structlog.get_logger("replicator.reader")


def preflight(settings: Settings, info: SourceServer) -> None:
    """The fatal start-up conditions (exit 3): binlog settings, grants, keys, FK cascades."""
    mapped = {t.source for t in settings.tables}
    checks.check_binlog_settings(info.binlog_variables())
    checks.check_grants(info.grants(), settings.mysql.user)
    existing, with_pk = info.tables(mapped)
    checks.check_primary_keys(mapped, existing, with_pk)
    checks.check_fk_cascades(mapped, info.foreign_keys(mapped))


def create_reader(settings: Settings, *, start_from: StartAt | None = None,
                  options: ReaderOptions | None = None, metrics: ReaderMetrics | None = None,
                  stop_event: threading.Event | None = None) -> Reader:
    """A reader over the real adapters (not started: ``run()`` or ``start()`` it)."""
    if not settings.tables:
        raise ConfigError("no tables are mapped: add a `tables:` section (source: db.table) to the config")
    info = ServerInfo(settings.mysql)
    mapped = {t.source for t in settings.tables}
    opts = options or ReaderOptions()
    m = metrics or ReaderMetrics()

    def source_factory(start: StartAt) -> BinlogSource:
        return BinlogSource(settings.mysql, start, mapped, lambda: info.catalog(mapped),
                            heartbeat_s=opts.heartbeat_s)

    def sink_factory() -> KafkaTransactionalSink:
        ensure_topics(settings.kafka, pipeline_topics(settings), timeout_s=opts.kafka_timeout_s)
        sink = KafkaTransactionalSink(settings, on_delivery_error=m.delivery_errors.inc,
                                      timeout_s=opts.kafka_timeout_s)
        sink.start()
        return sink

    def run_preflight() -> None:
        preflight(settings, info)

    return Reader(settings, source_factory=source_factory, sink_factory=sink_factory,
                  positions=StartPositions(info.head, info.binlog_files, start_from), options=opts, metrics=m,
                  stop_event=stop_event, preflight=run_preflight,
                  on_lag=HeartbeatPublisher(settings, on_failure=m.heartbeat_failures.inc))


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

"""Wiring of the real adapters (binlog, server metadata, Kafka) into a reader, and the preflight.

:func:`create_reader` wires the real adapters (binlog, server metadata, Kafka) into a
:class:`replicator.reader.Reader`; tests and the CLI both use it.
"""

from __future__ import annotations

import threading

from replicator.kafka_io import KafkaTransactionalSink, ensure_topics
from replicator.reader import Reader, ReaderOptions, StartPositions
from replicator.reader_heartbeat import HeartbeatPublisher
from replicator.reader_metrics import ReaderMetrics
from replicator.settings import Settings
from replicator.source import checks
from replicator.source.binlog import BinlogSource
from replicator.source.gtid import StartAt
from replicator.source.server import ServerInfo


def preflight(settings: Settings, info: ServerInfo) -> None:
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
    if not settings.tables:
        from replicator.errors import ConfigError

        raise ConfigError("no tables are mapped: add a `tables:` section (source: db.table) to the config")
    info = ServerInfo(settings.mysql)
    mapped = {t.source for t in settings.tables}
    opts = options or ReaderOptions()
    m = metrics or ReaderMetrics()

    def source_factory(start: StartAt) -> BinlogSource:
        return BinlogSource(settings.mysql, start, mapped, lambda: info.catalog(mapped),
                            heartbeat_s=opts.heartbeat_s)

    def sink_factory() -> KafkaTransactionalSink:
        ensure_topics(settings, timeout_s=opts.kafka_timeout_s)
        sink = KafkaTransactionalSink(settings, on_delivery_error=m.delivery_errors.inc,
                                      timeout_s=opts.kafka_timeout_s)
        sink.start()
        return sink

    def run_preflight() -> None:
        preflight(settings, info)

    return Reader(settings, source_factory=source_factory, sink_factory=sink_factory,
                  positions=StartPositions(info.head, info.binlog_files, start_from), options=opts, metrics=m,
                  stop_event=stop_event, preflight=run_preflight, on_lag=HeartbeatPublisher(settings))

"""structlog set-up: one event name per line with key-value context; JSON in production.

Our own loggers are structlog loggers. Vendor libraries (botocore, redis, pymysql,
pymysqlreplication, urllib3, and librdkafka through :func:`kafka_logger`) log through the
standard library instead; :func:`configure_logging` puts one handler on the root ``logging``
logger that renders their records with the same renderer, level and timestamp keys, so the
log stays one format (JSON or console) whoever wrote the line. Vendor loggers are held at
WARNING (botocore alone writes several lines per request at DEBUG).

Every line, ours and the vendors', carries ``migration_phase`` once the process knows it
(:func:`set_migration_phase_field`).
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from replicator.settings import LogSettings

#: The stdlib logger confluent-kafka hands librdkafka's log lines to (see :func:`kafka_logger`).
KAFKA_LOGGER_NAME = "librdkafka"
#: Our own stdlib logger trees, should any of our code log through ``logging``: they follow
#: ``log.level``; everything else (the vendors) follows the root logger's level.
OWN_LOGGERS = ("replicator", "consumers", "validators")
#: Vendors log at WARNING and above unless asked otherwise.
VENDOR_LEVEL = logging.WARNING

_HANDLER_NAME = "replicator.logs.bridge"
_migration_phase: int | None = None


def set_migration_phase_field(n: int | None) -> None:
    """Put ``migration_phase=n`` on every log line from now on (``None``: leave it off).

    Process-wide (not a context variable) so that lines written from vendor threads carry it
    too. A ``migration_phase`` passed explicitly to a log call wins.
    """
    global _migration_phase
    _migration_phase = n


def add_migration_phase(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the field set by :func:`set_migration_phase_field`, when known."""
    phase = _migration_phase
    if phase is not None:
        event_dict.setdefault("migration_phase", phase)
    return event_dict


def kafka_logger() -> logging.Logger:
    """The stdlib logger for librdkafka's own log lines.

    Pass it as the ``"logger"`` entry of a confluent-kafka client config (Producer, Consumer,
    AdminClient)::

        Producer({"bootstrap.servers": servers, "logger": kafka_logger()})

    confluent-kafka then hands each librdkafka line to this logger, which propagates to the
    root handler that :func:`configure_logging` installs, so the line is rendered like ours
    (logger name ``librdkafka``). Two things to know: confluent-kafka forwards the lines only
    from ``poll()`` / ``flush()`` calls of that client (never from librdkafka's own threads),
    and the logger sits at the vendor level (WARNING) like every vendor logger, on top of
    librdkafka's own ``log_level`` setting.
    """
    return logging.getLogger(KAFKA_LOGGER_NAME)


class _BridgeHandler(logging.Handler):
    """Root handler writing each formatted record as one line, the way structlog's PrintLogger
    does -- and through the same per-file lock, so vendor lines and ours never interleave.

    Without an explicit stream it writes to whatever ``sys.stderr`` is at the time of the
    record (pytest, click's test runner and friends swap it).
    """

    def __init__(self, stream: TextIO | None) -> None:
        super().__init__()
        self.set_name(_HANDLER_NAME)
        self._stream = stream
        self._out_file: TextIO | None = None
        self._out: structlog.PrintLogger | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            stream = self._stream if self._stream is not None else sys.stderr
            if self._out is None or self._out_file is not stream:
                self._out, self._out_file = structlog.PrintLogger(file=stream), stream
            self._out.msg(line)
        except Exception:
            self.handleError(record)


def configure_logging(cfg: LogSettings, *, stream: TextIO | None = None,
                      vendor_level: int | None = None) -> None:
    """Set up structlog (our lines) and the root ``logging`` handler (vendor lines).

    ``stream`` defaults to standard error. ``vendor_level`` defaults to WARNING, or to
    ``cfg.level`` when that is stricter. Calling it again replaces the previous set-up (the
    root handler is swapped, not added twice).
    """
    level: int = getattr(logging, cfg.level.upper())
    out = stream if stream is not None else sys.stderr
    # JSON carries a traceback as the "exception" string (format_exc_info). The console renderer
    # prints it under the line itself -- as plain text: its default (rich, with local variables)
    # would put secrets in the log, and format_exc_info in front of it only earns a warning.
    render: list[Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if cfg.format == "json"
        else [structlog.dev.ConsoleRenderer(colors=out.isatty(),
                                            exception_formatter=structlog.dev.plain_traceback)]
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_migration_phase,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            *render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )

    handler = _BridgeHandler(stream)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_logger_name,
            add_migration_phase,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(vendor_level if vendor_level is not None else max(VENDOR_LEVEL, level))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)

"""structlog set-up: one event name per line with key-value context; JSON in production."""

from __future__ import annotations

import logging
import sys

import structlog

from replicator.settings import LogSettings


def configure_logging(cfg: LogSettings) -> None:
    level = getattr(logging, cfg.level.upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if cfg.format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )

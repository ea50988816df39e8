"""How a long-running process (writer, reverse replication) learns it should stop."""

from __future__ import annotations

import signal
import threading
from types import FrameType

import structlog


def stop_on_signals(logger_name: str) -> threading.Event:
    """An event set by SIGTERM or SIGINT (logged as ``stopping``); the loop checks it."""
    stopping = threading.Event()
    log = structlog.get_logger(logger_name)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return stopping

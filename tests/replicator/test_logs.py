"""Log set-up: vendor (stdlib) lines come out in our format, with the migration phase on every line."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from replicator import logs
from replicator.logs import configure_logging, kafka_logger, set_migration_phase_field
from replicator.settings import LogSettings

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Leave logging as the test found it: structlog config, root handler and levels, phase field."""
    root = logging.getLogger()
    saved_config = structlog.get_config()
    saved_handlers = list(root.handlers)
    saved_levels = {name: logging.getLogger(name).level for name in ("", *logs.OWN_LOGGERS)}
    set_migration_phase_field(None)  # another test's process-wide phase must not leak in
    yield
    set_migration_phase_field(None)
    for h in list(root.handlers):
        if h.get_name() == logs._HANDLER_NAME and h not in saved_handlers:
            root.removeHandler(h)
    for h in saved_handlers:
        if h not in root.handlers:
            root.addHandler(h)
    for name, level in saved_levels.items():
        logging.getLogger(name).setLevel(level)
    structlog.configure(**saved_config)


def _json_lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_a_vendor_stdlib_line_comes_out_as_one_json_object() -> None:
    buf = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=buf)
    logging.getLogger("botocore.retryhandler").warning("retry needed: %s attempts", 3)
    [line] = _json_lines(buf)
    assert line["event"] == "retry needed: 3 attempts"
    assert line["level"] == "warning"
    assert line["logger"] == "botocore.retryhandler"
    assert ISO_UTC.match(line["timestamp"])
    assert "migration_phase" not in line  # not known yet
    assert not {"_record", "_from_structlog"} & line.keys()


def test_vendor_exceptions_are_rendered_into_the_json_line() -> None:
    buf = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=buf)
    try:
        raise ConnectionError("redis went away")
    except ConnectionError:
        logging.getLogger("redis").exception("connection lost")
    [line] = _json_lines(buf)
    assert line["event"] == "connection lost" and line["level"] == "error"
    assert "ConnectionError: redis went away" in line["exception"]


def test_vendors_stay_at_warning_while_our_level_follows_the_settings() -> None:
    buf = io.StringIO()
    configure_logging(LogSettings(format="json", level="debug"), stream=buf)
    logging.getLogger("botocore.endpoint").debug("Sending http request")
    logging.getLogger("urllib3.connectionpool").info("Starting new HTTPS connection")
    structlog.get_logger("replicator.reader").debug("batch flushed", rows=3)
    logging.getLogger("replicator.something").debug("our own stdlib logger")
    assert [(ln["event"], ln["level"]) for ln in _json_lines(buf)] == [
        ("batch flushed", "debug"), ("our own stdlib logger", "debug")]


def test_a_stricter_log_level_also_holds_back_vendor_warnings() -> None:
    buf = io.StringIO()
    configure_logging(LogSettings(format="json", level="error"), stream=buf)
    logging.getLogger("pymysqlreplication").warning("skipping")
    logging.getLogger("pymysql").error("lost connection")
    assert [ln["event"] for ln in _json_lines(buf)] == ["lost connection"]


def test_vendor_level_can_be_lowered_for_debugging() -> None:
    buf = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=buf, vendor_level=logging.DEBUG)
    logging.getLogger("botocore.endpoint").debug("Sending http request")
    assert [ln["event"] for ln in _json_lines(buf)] == ["Sending http request"]


def test_our_structlog_lines_keep_their_json_shape() -> None:
    buf = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=buf)
    structlog.get_logger("replicator.phase").info("Migration phase changed", from_phase=1, to_phase=2)
    [line] = _json_lines(buf)
    assert list(line) == ["from_phase", "to_phase", "event", "level", "timestamp"]
    assert line["event"] == "Migration phase changed" and line["level"] == "info"
    assert ISO_UTC.match(line["timestamp"])


def test_migration_phase_is_on_our_lines_and_vendor_lines_once_known() -> None:
    buf = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=buf)
    set_migration_phase_field(3)
    structlog.get_logger("replicator.reader").info("Migration phase changed", from_phase=2, to_phase=3)
    logging.getLogger("botocore").warning("throttled")
    structlog.get_logger("replicator.reader").info("explicit", migration_phase=2)  # the caller wins
    set_migration_phase_field(None)
    logging.getLogger("botocore").warning("phase unknown again")
    ours, vendor, explicit, unknown = _json_lines(buf)
    assert ours["migration_phase"] == 3 and ours["event"] == "Migration phase changed"
    assert vendor["migration_phase"] == 3 and vendor["logger"] == "botocore"
    assert explicit["migration_phase"] == 2
    assert "migration_phase" not in unknown


def test_console_format_renders_vendor_lines_like_ours() -> None:
    buf = io.StringIO()
    configure_logging(LogSettings(format="console"), stream=buf)
    set_migration_phase_field(4)
    structlog.get_logger("replicator.reader").info("reader started", server_id=7)
    logging.getLogger("redis.connection").warning("reconnecting")
    ours, vendor = buf.getvalue().splitlines()
    assert "reader started" in ours and "server_id=7" in ours and "migration_phase=4" in ours
    assert not ours.lstrip().startswith("{")
    assert "[warning" in vendor and "reconnecting" in vendor and "redis.connection" in vendor
    assert "migration_phase=4" in vendor


def test_console_exceptions_are_plain_tracebacks_without_local_variables() -> None:
    # pytest turns warnings into errors: format_exc_info ahead of the console renderer warned.
    buf = io.StringIO()
    configure_logging(LogSettings(format="console"), stream=buf)
    password = "hunter2"  # noqa: S105 -- a local that must not reach the log
    try:
        raise ValueError(f"bad length {len(password)}")
    except ValueError:
        structlog.get_logger("replicator").exception("ours failed")
        logging.getLogger("pymysql").exception("vendor failed")
    text = buf.getvalue()
    assert text.count("ValueError: bad length 7") == 2
    assert "ours failed" in text and "vendor failed" in text and "hunter2" not in text


def test_configuring_twice_keeps_one_root_handler_writing_to_the_latest_stream() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(LogSettings(format="json"), stream=first)
    configure_logging(LogSettings(format="json"), stream=second)
    bridges = [h for h in logging.getLogger().handlers if h.get_name() == logs._HANDLER_NAME]
    assert len(bridges) == 1
    logging.getLogger("botocore").warning("once")
    structlog.get_logger("replicator").info("ours once")
    assert first.getvalue() == ""
    assert [ln["event"] for ln in _json_lines(second)] == ["once", "ours once"]


def test_the_existing_signature_writes_to_standard_error(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogSettings(format="json"))
    logging.getLogger("urllib3").warning("pool full")
    structlog.get_logger("replicator").warning("ours")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert [json.loads(ln)["event"] for ln in captured.err.splitlines()] == ["pool full", "ours"]


def test_kafka_logger_carries_librdkafka_lines_into_the_json_log() -> None:
    from confluent_kafka import Producer

    buf = io.StringIO()
    configure_logging(LogSettings(format="json"), stream=buf)
    assert isinstance(kafka_logger(), logging.Logger) and kafka_logger().name == "librdkafka"
    # Nothing listens on port 1: librdkafka logs the refused connection (at error level), and
    # confluent-kafka forwards it to the logger from poll().
    producer = Producer({"bootstrap.servers": "127.0.0.1:1", "logger": kafka_logger(),
                         "reconnect.backoff.ms": 50})
    deadline = time.monotonic() + 10
    while not buf.getvalue() and time.monotonic() < deadline:
        producer.poll(0.1)
    lines = _json_lines(buf)
    assert lines and all(ln["logger"] == "librdkafka" and ISO_UTC.match(ln["timestamp"]) for ln in lines)

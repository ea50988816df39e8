"""The Connect worker wrapper's reading of its log (no JVM started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.connect_worker import ConnectError, ConnectWorker


def _worker(tmp_path: Path, lines: list[str]) -> ConnectWorker:
    worker = ConnectWorker(tmp_path, {}, {})
    worker.log.write_text("".join(line + "\n" for line in lines))
    return worker


def test_logged_at_is_the_epoch_time_of_the_first_matching_line(tmp_path: Path) -> None:
    worker = _worker(tmp_path, ["1795781027000 INFO Kafka Connect started (x)",
                                "1795781027839 INFO Starting MariaDbConnectorTask with configuration:",
                                "1795781029000 INFO Starting MariaDbConnectorTask with configuration:"])
    assert worker.logged_at("Starting MariaDbConnectorTask") == 1795781027.839
    assert worker.logged_at("never logged") is None


def test_a_failed_task_in_the_log_is_an_error_naming_the_line(tmp_path: Path) -> None:
    worker = _worker(tmp_path, ["1795781027000 ERROR WorkerSourceTask{id=x-0} Task threw an uncaught and "
                                "unrecoverable exception (org.apache.kafka.connect.runtime.WorkerTask)"])
    worker.proc = type("Alive", (), {"poll": lambda self: None})()  # type: ignore[assignment]
    with pytest.raises(ConnectError, match="Task threw an uncaught"):
        worker.check()


def test_a_worker_never_started_reports_so(tmp_path: Path) -> None:
    with pytest.raises(ConnectError, match="not started"):
        ConnectWorker(tmp_path, {}, {}).check()

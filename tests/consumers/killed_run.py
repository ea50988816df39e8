"""The shared course of the random-workload tests that kill the pipeline: the writer killed with
SIGKILL a third of the way through the workload, the reader two thirds of the way, each restarted
(the reader from its checkpoint); then the racing backfill's end, and the pipeline catching up."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from replicator.phase.probes import KafkaOffsetProbe
from replicator.settings import Settings
from tests.conftest import admin_connect
from tests.replicator.backfill.test_backfill_convergence import reader_checkpoint

Proc = subprocess.Popen[bytes]


class Workload(Protocol):
    done: int
    error: BaseException | None

    def is_alive(self) -> bool: ...
    def join(self, timeout: float | None = None) -> None: ...


def wait_for(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def kill_each_once(workload: Workload, ops: int, reader: Proc, writer: Proc,
                   restart_reader: Callable[[], Proc],
                   restart_writer: Callable[[], Proc]) -> tuple[Proc, Proc]:
    """Kill -9 the writer at a third of ``ops``, the reader at two thirds; the restarted pair once
    the workload is done."""
    wait_for("a third of the workload", lambda: workload.done >= ops // 3 or not workload.is_alive(), 120)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    writer = restart_writer()
    wait_for("two thirds of the workload",
             lambda: workload.done >= 2 * ops // 3 or not workload.is_alive(), 120)
    os.kill(reader.pid, signal.SIGKILL)
    reader.wait()
    reader = restart_reader()
    workload.join(300)
    assert workload.error is None, workload.error
    assert not workload.is_alive(), "the workload did not finish"
    return reader, writer


def finish_backfill(backfill: Proc, writer: Proc, log: Path) -> None:
    """The backfill ends once the writer applied it: a writer that died (e.g. DynamoDB timing out at
    its start-up) fails the test now rather than after the backfill's own time-out."""
    wait_for("the backfill", lambda: backfill.poll() is not None or writer.poll() is not None, 600)
    assert writer.poll() is None, f"the writer exited; see {log}"
    assert backfill.wait() == 0, f"the backfill failed; see {log}"


def wait_caught_up(settings: Settings, env: dict[str, str], topics: Sequence[str], reader: Proc, writer: Proc,
                   log: Path, timeout_s: float = 300) -> None:
    """Until the reader has checkpointed MySQL's binlog head as of now and the writer has consumed
    every table topic; a pipeline process that dies fails at once."""
    with admin_connect(env) as conn, conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        head: Any = tuple(cur.fetchone()[:2])
    probe = KafkaOffsetProbe(settings.kafka)
    wait_for("the pipeline to catch up", lambda: reader.poll() is not None or writer.poll() is not None
             or (reader_checkpoint(settings) >= head
                 and all(v == 0 for v in probe.topic_lags(settings.writer_group, list(topics)).values())),
             timeout_s)
    assert reader.poll() is None and writer.poll() is None, f"a pipeline process died; see {log}"

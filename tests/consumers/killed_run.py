"""The shared course of the random-workload tests that kill the pipeline: the writer killed with
SIGKILL a third of the way through the workload, the reader two thirds of the way, each restarted
(the reader from its checkpoint); then the racing backfill's end, and the pipeline catching up."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from replicator.phase.probes import KafkaOffsetProbe
from replicator.settings import Settings
from tests.conftest import admin_connect
from tests.replicator.backfill.test_backfill_convergence import reader_checkpoint, start

Proc = subprocess.Popen[bytes]


class Workload(Protocol):
    done: int
    error: BaseException | None

    def is_alive(self) -> bool: ...
    def join(self, timeout: float | None = None) -> None: ...


class RandomWorkload(threading.Thread):
    """A thread that makes ``ops`` random changes at ``ops_per_s`` through its own connection: a
    subclass's ``step(cursor)`` is one change (one transaction, committed by ``commit``); an
    ``IntegrityError`` (a row gone meanwhile) is rolled back and counted, as an application
    would retry it; anything else stops it and is kept in ``error`` for the test."""

    def __init__(self, env: dict[str, str], db: str, next_id: int, seed: int, ops: int, ops_per_s: float,
                 *, tolerated: Sequence[int] = ()) -> None:
        super().__init__(daemon=True)
        self.conn = admin_connect(env, db)
        self.rng = random.Random(seed)
        self.next_id = next_id
        self.ops, self.ops_per_s = ops, ops_per_s
        self.tolerated = tuple(tolerated)  # MySQL error codes of an OperationalError to count and go on
        self.done = 0
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def step(self, cur: Any) -> None:
        raise NotImplementedError

    def run(self) -> None:
        import pymysql

        try:
            with self.conn.cursor() as cur:
                while self.done < self.ops and not self.halt.wait(1 / self.ops_per_s):
                    try:
                        self.step(cur)
                        self.conn.commit()
                    except pymysql.err.IntegrityError:
                        self.conn.rollback()
                    except pymysql.err.OperationalError as exc:
                        if exc.args[0] not in self.tolerated:
                            raise
                        self.conn.rollback()
                    self.done += 1
        except BaseException as exc:  # reported by the test
            self.error = exc

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


def prepare(admin: Any, schema: Sequence[str], seed: Callable[[Any], int]) -> tuple[int, str]:
    """Create the tables, seed the rows the backfill copies; (the seed's next id, the binlog
    position after it, ``file:offset``, where the reader starts)."""
    with admin.cursor() as cur:
        for ddl in schema:
            cur.execute(ddl)
        next_id = seed(cur)
        cur.execute("SHOW MASTER STATUS")
        binlog_file, binlog_pos = cur.fetchone()[:2]
    return next_id, f"{binlog_file}:{binlog_pos}"


@dataclass
class Pair:
    """The reader and the writer as processes (``replicator run`` from ``start_at``, ``replicator
    write --create-tables``), logging to ``log``; ``writer_env``: more variables for the writer."""

    isolated_env: dict[str, str]
    cfg: Path
    log: Path
    start_at: str
    writer_env: dict[str, str] = field(default_factory=dict)
    reader: Proc = field(init=False)
    writer: Proc = field(init=False)

    def __post_init__(self) -> None:
        # A server_id no other reader on the shared server uses (a restarted reader takes its own back).
        server_id = str(random.randint(100_000, 4_000_000))
        self.env = {**self.isolated_env, "REPLICATOR_MYSQL__SERVER_ID": server_id}
        self.reader = start(self.env, self.log, "run", "--config", str(self.cfg), "--from", self.start_at)
        self.writer = self.start_writer()

    def start_writer(self) -> Proc:
        return start({**self.env, **self.writer_env}, self.log, "write", "--config", str(self.cfg),
                     "--create-tables")

    def start_reader(self) -> Proc:
        """A reader that resumes from its checkpoint."""
        return start(self.env, self.log, "run", "--config", str(self.cfg))

    def kill_each_once(self, workload: Workload, ops: int) -> None:
        self.reader, self.writer = kill_each_once(workload, ops, self.reader, self.writer, self.start_reader,
                                                  self.start_writer)


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

"""The applied watermark end to end on the real stack: MySQL -> reader -> Kafka -> writer ->
DynamoDB, asked through :class:`replicator.control.watermark.PipelineWatermark` with the GTID
of each write (read-your-writes). Whenever it says "applied", DynamoDB already holds the write."""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from replicator.control import names
from replicator.control.watermark import PipelineWatermark, covers
from replicator.reader.service import create_reader
from replicator.settings import Settings, load_settings
from tests.conftest import admin_connect
from tests.consumers.conftest import InProcessWriter, WriterEnv
from tests.replicator.reader.support import FAST

pytestmark = pytest.mark.integration

READER_OPTIONS = replace(FAST, idle_checkpoint_s=60.0)  # unmapped transactions: never committed by idleness


class Pipeline:
    """Writes to MySQL, asks the watermark, reads DynamoDB."""

    def __init__(self, env: WriterEnv, stack: dict[str, str], dynamodb: Any) -> None:
        self.env, self.dynamodb = env, dynamodb
        self.source = f"{env.db}.users"
        self.watermark = PipelineWatermark(env.control, env.settings)
        self.conn = admin_connect(stack, env.db)
        self.n = 0

    def write(self, key: int) -> tuple[str, int]:
        """Insert or update row ``key`` with a new ``n``; its GTID and that ``n``."""
        self.n += 1
        with self.conn.cursor() as cur:
            cur.execute("INSERT INTO users (id, name, balance, n) VALUES (%s, 'x', 0, %s) "
                        "ON DUPLICATE KEY UPDATE n = VALUES(n)", (key, self.n))
            cur.execute("SELECT @@last_gtid")
            return str(cur.fetchone()[0]), self.n

    def write_unmapped(self) -> str:
        with self.conn.cursor() as cur:
            cur.execute("INSERT INTO other VALUES ()")
            cur.execute("SELECT @@last_gtid")
            return str(cur.fetchone()[0])

    def wait(self, gtid: str, timeout_s: float) -> bool:
        return self.watermark.wait_applied([self.source], gtid=gtid, timeout_s=timeout_s)

    def n_in_dynamodb(self, key: int) -> int | None:
        try:
            item = self.dynamodb.get_item(TableName=self.env.table, Key={"id": {"N": str(key)}},
                                          ConsistentRead=True).get("Item")
        except self.dynamodb.exceptions.ResourceNotFoundException:  # the writer has not created it yet
            return None
        return None if item is None or "n" not in item else int(item["n"]["N"])

    def close(self) -> None:
        self.conn.close()


def reader_settings(env: WriterEnv, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("REPLICATOR_MYSQL__SERVER_ID", str(random.randint(100_000, 4_000_000)))
    return load_settings(tables=[{"source": f"{env.db}.users"}], log={"level": "warning"})


@pytest.fixture()
def pipeline(writer_env: WriterEnv, isolated_env: dict[str, str], mysql_admin: Any,
             dynamodb: Any) -> Iterator[Pipeline]:
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE other (id INT AUTO_INCREMENT PRIMARY KEY)")  # not mapped
    p = Pipeline(writer_env, isolated_env, dynamodb)
    yield p
    p.close()


def wait_reader_started(control: Any, timeout_s: float = 60) -> None:
    """Until the reader's first marker: writes before its first start position are the backfill's
    (the stream does not carry them, and the watermark counts them as the backfill's, see
    :mod:`replicator.control.watermark`)."""
    deadline = time.monotonic() + timeout_s
    while control.get_marker(names.READER_WATERMARK) is None:
        assert time.monotonic() < deadline, "the reader published no watermark"
        time.sleep(0.05)


@contextmanager
def reader_running(settings: Settings, control: Any) -> Iterator[Any]:
    reader = create_reader(settings, options=READER_OPTIONS)
    reader.start()
    try:
        wait_reader_started(control)
        yield reader
    finally:
        reader.stop()


@contextmanager
def writer_running(in_process_writer: Any) -> Iterator[InProcessWriter]:
    w = in_process_writer()
    thread = threading.Thread(target=w.writer.run, name="writer", daemon=True)
    thread.start()
    try:
        yield w
    finally:
        w.writer.stop_event.set()
        thread.join(30)


def test_a_write_is_applied_through_its_gtid_within_a_bounded_time_and_is_then_in_dynamodb(
    pipeline: Pipeline, in_process_writer: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = reader_settings(pipeline.env, monkeypatch)
    with reader_running(settings, pipeline.env.control), writer_running(in_process_writer):
        for i in range(20):
            key = i % 7  # inserts, then updates of the same rows
            gtid, n = pipeline.write(key)
            assert pipeline.wait(gtid, timeout_s=15), f"write {i} ({gtid}) not applied within 15 s"
            assert pipeline.n_in_dynamodb(key) == n


def test_with_the_writer_not_running_a_write_is_not_applied_until_it_runs(
    pipeline: Pipeline, in_process_writer: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    with reader_running(reader_settings(pipeline.env, monkeypatch), pipeline.env.control):
        gtid, n = pipeline.write(1)
        started = time.monotonic()
        assert not pipeline.wait(gtid, timeout_s=1.5)
        assert time.monotonic() - started >= 1.5, "wait_applied returned before its deadline"
        reader_mark = pipeline.env.control.get_marker(names.READER_WATERMARK)
        assert reader_mark is not None and covers(reader_mark["gtid_position"], gtid), \
            "the reader had it: only the writer was missing"
        assert pipeline.n_in_dynamodb(1) is None
        with writer_running(in_process_writer):
            assert pipeline.wait(gtid, timeout_s=15)
            assert pipeline.n_in_dynamodb(1) == n


def test_a_gtid_of_an_unmapped_table_is_applied_through_without_a_kafka_commit(
    pipeline: Pipeline, in_process_writer: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = reader_settings(pipeline.env, monkeypatch)
    with reader_running(settings, pipeline.env.control) as reader, writer_running(in_process_writer):
        gtid, _ = pipeline.write(1)
        assert pipeline.wait(gtid, timeout_s=15)
        unmapped = pipeline.write_unmapped()
        assert pipeline.wait(unmapped, timeout_s=5)
        assert reader.committed is not None and not covers(reader.committed.gtid_position, unmapped), \
            "covered by the published position, not by a checkpoint commit"


@pytest.mark.slow
def test_read_your_writes_latency_over_100_writes(
    pipeline: Pipeline, in_process_writer: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Latency from the MySQL commit to applied_through: printed (run with -s), p99 bounded."""
    latencies = []
    settings = reader_settings(pipeline.env, monkeypatch)
    with reader_running(settings, pipeline.env.control), writer_running(in_process_writer):
        pipeline.wait(pipeline.write(0)[0], timeout_s=15)  # warm up
        for i in range(100):
            gtid, n = pipeline.write(i % 10)
            started = time.monotonic()
            assert pipeline.wait(gtid, timeout_s=15)
            latencies.append(time.monotonic() - started)
            assert pipeline.n_in_dynamodb(i % 10) == n
    cuts = statistics.quantiles(latencies, n=100)
    print(f"\nread-your-writes latency over {len(latencies)} writes: p50 {cuts[49] * 1000:.0f} ms, "
          f"p99 {cuts[98] * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
    assert cuts[98] < 2.0


# --------------------------------------------------------------------------- kill -9

class Process:
    """``replicator run`` or ``replicator write`` as a real process, killed with SIGKILL."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str]) -> None:
        self.args, self.log, self.env = args, log, env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([str(Path(sys.executable).parent / "replicator"), *self.args],
                                         stdout=out, stderr=subprocess.STDOUT, env=self.env)

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
        self.proc.send_signal(signal.SIGKILL)
        assert self.proc.wait(timeout=30) == -signal.SIGKILL

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def test_kill_9_of_the_writer_or_the_reader_never_makes_the_watermark_claim_a_missing_write(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({"tables": [{"source": pipeline.source}], "log": {"level": "warning"}}))
    env = {**os.environ, "REPLICATOR_MYSQL__SERVER_ID": str(random.randint(100_000, 4_000_000))}
    reader = Process(["run", "--config", str(config), "--max-batch-ms", "20"], tmp_path / "reader.log", env)
    writer = Process(["write", "--config", str(config), "--create-tables", "--instance-id",
                      f"{pipeline.env.db}-w"], tmp_path / "writer.log", env)
    rng = random.Random(5)
    pending: list[tuple[str, int, int]] = []  # (gtid, key, n) written while a process was down
    checked = 0

    def write_and_check(expect_applied: bool) -> None:
        nonlocal checked
        key = rng.randrange(12)
        gtid, n = pipeline.write(key)
        applied = pipeline.wait(gtid, timeout_s=30 if expect_applied else 0.7)
        if applied:
            seen = pipeline.n_in_dynamodb(key)
            assert seen is not None and seen >= n, f"{gtid} claimed applied, DynamoDB holds n={seen}, not {n}"
            checked += 1
        else:
            assert not expect_applied, f"{gtid} was not applied within 30 s"
            pending.append((gtid, key, n))

    def reader_restarted() -> None:
        """Killed and started again; returns once the new process has published its marker."""
        reader.kill()
        since = time.time()
        reader.start()
        deadline = time.monotonic() + 60
        while float((pipeline.env.control.get_marker(names.READER_WATERMARK) or {}).get("ts", 0)) <= since:
            assert time.monotonic() < deadline, "the restarted reader published no watermark"
            time.sleep(0.05)

    try:
        reader.start()
        writer.start()
        wait_reader_started(pipeline.env.control)
        for _ in range(8):
            write_and_check(expect_applied=True)
        writer.kill()
        for _ in range(3):
            write_and_check(expect_applied=False)  # in Kafka, applied by nobody: never claimed
        reader_restarted()  # its offsets now come from the topic tails: still not claimed
        for gtid, _, _ in pending:
            assert not pipeline.watermark.applied_through([pipeline.source], gtid=gtid)
        for _ in range(2):
            write_and_check(expect_applied=False)
        writer.start()
        for _ in range(5):
            write_and_check(expect_applied=True)
        reader.kill()
        for _ in range(3):
            write_and_check(expect_applied=False)  # not even in Kafka
        reader.start()
        for _ in range(5):
            write_and_check(expect_applied=True)
        for _ in range(3):  # then both killed at once, restarted in the other order
            write_and_check(expect_applied=True)
            time.sleep(rng.uniform(0, 0.05))
        reader.kill()
        writer.kill()
        writer.start()
        reader.start()
        for _ in range(5):
            write_and_check(expect_applied=True)
        for gtid, key, n in pending:  # what waited while a process was down is applied now
            assert pipeline.wait(gtid, timeout_s=30)
            seen = pipeline.n_in_dynamodb(key)
            assert seen is not None and seen >= n
    finally:
        writer.stop()
        reader.stop()
    assert len(pending) == 8 and checked == 26

"""Our reader against Debezium on the same box, the same MariaDB and Kafka and the same binlog range.

The tool users would pick instead: Kafka Connect standalone with the Debezium MariaDB connector
(``stack/connect/pom.xml``, fetched by ``python3 scripts/stack.py fetch connect`` into the
stack's cache), JSON converter without schemas, heap capped at 1 GiB.

1. The connector is primed before the workload: it starts with ``snapshot.mode=no_data`` (table
   schemas, no rows), one marker row change passes through it, and it stops with that offset
   committed. So the timed run streams exactly the workload's range, no snapshot.
2. BENCH_DEBEZIUM_ROWS row changes (default 1,000,000, ~3 minutes in all; smaller sizes while
   developing understate Debezium, whose JIT warms up over the first ~200k rows) are written
   to one table, as ``bench/bench_reader.py`` writes them (80 % inserts, 20 % updates, 100 rows
   per transaction).
3. Over that range, in this order: the bare python-mysql-replication loop (decode only), our
   reader (binlog -> Kafka transactions, committed) and the Debezium connector (a new worker
   process resuming from the primed offset). Debezium is timed from its task's start (its log)
   to the moment the topic holds every event (sum of the partitions' end offsets); the JVM's
   start-up until then is reported apart. CPU seconds: this process's for our reader, the JVM's
   (``/proc``) for Debezium, each over its timed part.

Reported: rows/s of each, reader/Debezium and reader/bare ratios, rows per CPU-second.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.bench_reader import WORKLOAD_DDL, _admin, _bare_loop, _reader_run, _settings, _write_workload
from bench.connect_worker import ConnectWorker
from bench.deadline import Deadline
from bench.topics import delete_topics
from replicator.adapters.kafka import TopicPartition, consumer, kafka_errors
from replicator.errors import BrokerUnavailable
from replicator.settings import load_settings

ROWS = int(os.environ.get("BENCH_DEBEZIUM_ROWS", "1000000"))
PASS_DEADLINE_S = 120 + ROWS / 2000  # per contender; 2,000 rows/s is far below any rate measured here
START_DEADLINE_S = 180  # a JVM start on a busy 2-core box
BUDGET_S = 3 * PASS_DEADLINE_S + 3 * START_DEADLINE_S + ROWS / 2000 + 120  # bench/__main__.py's watchdog
RESULTS = Path(__file__).resolve().parent / "results"
TASK_STARTED = (r"Starting MariaDbConnectorTask with configuration|"
                r"Source task finished initialization and start")


class Debezium:
    """The connector's two runs (prime, timed) over one offsets file and one schema history."""

    def __init__(self, db: str, workdir: Path) -> None:
        self.db = db
        self.workdir = workdir
        self.prefix = "dbz" + uuid.uuid4().hex[:8]
        self.topic = f"{self.prefix}.{db}.t"
        self.kafka = load_settings().kafka
        self.watch = consumer(self.kafka, f"{self.prefix}-watch")
        self._count = 0
        self.worker_props = {
            "bootstrap.servers": self.kafka.bootstrap_servers,
            "offset.storage.file.filename": str(workdir / "offsets.dat"),
            "offset.flush.interval.ms": "1000",
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": "false",
            "value.converter.schemas.enable": "false",
            "listeners": "http://127.0.0.1:0",  # the REST API is not used; any free port
            "plugin.discovery": "only_scan",
        }
        self.connector_props = {
            "name": f"{self.prefix}-mariadb",
            "connector.class": "io.debezium.connector.mariadb.MariaDbConnector",
            "tasks.max": "1",
            "database.hostname": os.environ["REPLICATOR_MYSQL__HOST"],
            "database.port": os.environ["REPLICATOR_MYSQL__PORT"],
            "database.user": os.environ["REPLICATOR_MYSQL__USER"],
            "database.password": os.environ["REPLICATOR_MYSQL__PASSWORD"],
            "database.server.id": str(random.randint(6_000_001, 7_000_000)),
            "topic.prefix": self.prefix,
            "database.include.list": db,
            "table.include.list": f"{db}.t",
            "snapshot.mode": "no_data",
            "snapshot.locking.mode": "none",
            "include.schema.changes": "false",
            "decimal.handling.mode": "string",  # exact text, as our events carry DECIMAL
            "schema.history.internal": "io.debezium.storage.file.history.FileSchemaHistory",
            "schema.history.internal.file.filename": str(workdir / "schema-history.dat"),
            "topic.creation.default.replication.factor": "1",
            "topic.creation.default.partitions": str(self.kafka.partitions),
        }

    def count(self) -> int:
        """Events in the topic: the sum of its partitions' end offsets (no transactions here); the
        last count seen while the topic is new (no leader yet) or the broker does not answer."""
        try:
            with kafka_errors(f"reading the end offsets of {self.topic}"):
                meta = self.watch.list_topics(self.topic, timeout=5).topics.get(self.topic)
                if meta is None or meta.error is not None:
                    return self._count
                ends = [self.watch.get_watermark_offsets(TopicPartition(self.topic, p), timeout=5,
                                                         cached=False)[1] for p in meta.partitions]
                self._count = sum(ends)
        except BrokerUnavailable as exc:
            print(f"({exc}; keeping the last count {self._count})")
        return self._count

    def _worker(self, run: str) -> ConnectWorker:
        return ConnectWorker(self.workdir / run, self.worker_props, self.connector_props)

    def prime(self) -> None:
        """Capture the table's schema, commit an offset past one marker row change, stop."""
        worker = self._worker("prime")
        worker.start()
        try:
            deadline = Deadline(START_DEADLINE_S, f"the primed connector to stream (log {worker.log})")
            while worker.logged_at(r"Connected to binlog|Waiting for keepalive thread to start|"
                                   r"Streaming requested from") is None:
                worker.check()
                deadline.check()
                time.sleep(0.2)
            conn = _admin(self.db)
            with conn.cursor() as cur:
                cur.execute("INSERT INTO t (id, a) VALUES (-1, 0)")
            conn.commit()
            conn.close()
            deadline = Deadline(START_DEADLINE_S, f"the marker row change in topic {self.topic}")
            while self.count() < 1:
                worker.check()
                deadline.check()
                time.sleep(0.2)
            time.sleep(2.5)  # two offset flushes (offset.flush.interval.ms=1000); the stop commits too
        finally:
            worker.stop()
        if not (self.workdir / "offsets.dat").exists():
            raise RuntimeError(f"the primed connector committed no offset ({self.workdir / 'offsets.dat'})")

    def timed(self, rows: int) -> dict[str, float]:
        """A new worker resumes after the marker; times it until the topic holds ``rows`` more events."""
        base = self.count()
        worker = self._worker("timed")
        worker.start()
        try:
            deadline = Deadline(START_DEADLINE_S + PASS_DEADLINE_S,
                                f"Debezium to publish {rows} events to {self.topic} (log {worker.log})")
            first_at: float | None = None
            task_cpu = 0.0
            n = 0
            while n < base + rows:
                worker.check()
                deadline.check(f"{n - base} events so far")
                time.sleep(0.05)
                cpu = worker.cpu_seconds()
                n = self.count()
                now = time.time()
                if first_at is None:
                    if worker.logged_at(TASK_STARTED) is None:
                        task_cpu = cpu  # the JVM's start-up CPU, up to the last look before the task starts
                    if n > base:
                        first_at = now
            last_at, cpu_total = now, cpu
            started = worker.logged_at(TASK_STARTED) or worker.launched_at
        finally:
            worker.stop()
        if n != base + rows:
            raise RuntimeError(f"Debezium published {n - base} events to {self.topic}, expected {rows}")
        return {"startup_s": started - worker.launched_at, "seconds": last_at - started,
                "first_event_s": (first_at or last_at) - started, "cpu_s": cpu_total - task_cpu,
                "startup_cpu_s": task_cpu}

    def close(self) -> None:
        self.watch.close()
        delete_topics(self.kafka, (self.prefix + ".",))


def main() -> dict[str, Any]:
    db = "bench_dbz_" + uuid.uuid4().hex[:6]
    workdir = Path(tempfile.mkdtemp(prefix="bench-debezium-"))
    conn = _admin()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{db}`")
        cur.execute(f"CREATE TABLE `{db}`.{WORKLOAD_DDL.removeprefix('CREATE TABLE ')}")
    conn.commit()
    dbz = Debezium(db, workdir)
    prefixes_before = len(_reader_prefixes())
    done = False
    try:
        figures = _run(db, dbz)
        done = True
        return figures
    finally:
        dbz.close()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        conn.close()
        _drop_reader_topics(prefixes_before)
        for run in ("prime", "timed"):  # bench/results/ keeps the workers' last logs for a look
            log = workdir / run / "connect.log"
            if log.exists():
                shutil.copy(log, RESULTS / f"bench_debezium-{run}-connect.log")
        if done:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"the Connect workers' files and logs are kept in {workdir}")


def _run(db: str, dbz: Debezium) -> dict[str, Any]:
    t0 = time.perf_counter()
    dbz.prime()
    print(f"Debezium primed (schema captured, offset committed) in {time.perf_counter() - t0:.1f} s",
          flush=True)
    t0 = time.perf_counter()
    start, end = _write_workload(db, ROWS, create=False)
    print(f"workload: {ROWS} row changes written in {time.perf_counter() - t0:.1f} s ({start} -> {end})",
          flush=True)
    bare_rows, bare_s = _bare_loop(db, start, end, ROWS)
    print(f"bare python-mysql-replication loop: {bare_rows} rows in {bare_s:.1f} s = "
          f"{bare_rows / bare_s:,.0f} rows/s", flush=True)
    settings = _settings(db, "br" + uuid.uuid4().hex[:8])
    cpu0 = time.process_time()
    reader_s = _reader_run(settings, start, end, deadline_s=PASS_DEADLINE_S)
    reader_cpu = time.process_time() - cpu0
    print(f"reader (binlog -> Kafka committed): {ROWS} rows in {reader_s:.1f} s = "
          f"{ROWS / reader_s:,.0f} rows/s, {reader_cpu:.1f} CPU-s", flush=True)
    d = dbz.timed(ROWS)
    print(f"Debezium MariaDB connector: JVM start-up {d['startup_s']:.1f} s "
          f"({d['startup_cpu_s']:.1f} CPU-s), "
          f"then {ROWS} rows in {d['seconds']:.1f} s = {ROWS / d['seconds']:,.0f} rows/s, "
          f"{d['cpu_s']:.1f} CPU-s (first event after {d['first_event_s']:.1f} s)", flush=True)
    return _report(bare_rows / bare_s, ROWS / reader_s, reader_cpu / reader_s, d)


def _report(bare_rps: float, reader_rps: float, reader_cores: float, d: dict[str, float]) -> dict[str, Any]:
    dbz_rps = ROWS / d["seconds"]
    dbz_cores = d["cpu_s"] / d["seconds"]
    ratio = reader_rps / dbz_rps
    per_cpu = (reader_rps / reader_cores) / (dbz_rps / dbz_cores)
    print(f"reader / Debezium: {ratio:.2f}x wall (target >= 1.0: {'met' if ratio >= 1 else 'NOT met'}), "
          f"{per_cpu:.2f}x per CPU-second (reader {reader_cores:.2f} cores, Debezium {dbz_cores:.2f}); "
          f"reader / bare loop: {reader_rps / bare_rps:.2f}x (target >= 3)", flush=True)
    return {
        "rows": ROWS, "bare_rows_per_s": round(bare_rps), "reader_rows_per_s": round(reader_rps),
        "debezium_rows_per_s": round(dbz_rps), "ratio_reader_to_debezium": round(ratio, 3),
        "ratio_reader_to_bare": round(reader_rps / bare_rps, 3),
        "reader_rows_per_cpu_s": round(reader_rps / reader_cores),
        "debezium_rows_per_cpu_s": round(dbz_rps / dbz_cores),
        "ratio_reader_to_debezium_per_cpu_s": round(per_cpu, 3),
        "reader_cores": round(reader_cores, 2), "debezium_cores": round(dbz_cores, 2),
        "debezium_jvm_startup_s": round(d["startup_s"], 2),
        "debezium_jvm_startup_cpu_s": round(d["startup_cpu_s"], 2),
        "debezium_first_event_s": round(d["first_event_s"], 2),
        "targets": {"ratio_reader_to_debezium": 1.0, "ratio_reader_to_bare": 3.0},
        "debezium": "MariaDB connector 3.5.0.Final, Kafka Connect 4.1.1 standalone, JSON without schemas, "
                    "-Xmx1g, no snapshot",
    }


def _reader_prefixes() -> list[str]:
    from bench import bench_reader

    return bench_reader.PREFIXES


def _drop_reader_topics(keep: int) -> None:
    """Delete the topics of the reader runs this benchmark made (bench_reader's prefixes after ``keep``)."""
    delete_topics(load_settings().kafka, tuple(_reader_prefixes()[keep:]))

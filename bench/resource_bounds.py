"""Resource bounds (issue 15): peak RSS of the reader, the writer and the reverse replication
under a backlog, at growing backlog sizes, each a real ``replicator`` process.

- reader: a binlog backlog of N row changes (written while no reader ran), then
  ``replicator run --from <the position before them>`` until it has committed all N;
- writer: the N change events that leaves in Kafka, then ``replicator write --create-tables``
  (phase 2) until it has applied all N;
- writer under a DynamoDB outage: the writer caught up, DynamoDB Local frozen (SIGSTOP of the
  stack's own process; only on the local process stack) for ``BENCH_RSS_OUTAGE_S`` while rows
  keep flowing through the reader into Kafka, then thawed until the writer has applied them;
- reverse: N application writes (``_origin = app``) in a DynamoDB Stream, then ``replicator
  reverse`` until MySQL holds all N.

Peak RSS is the kernel's high-water mark (``VmHWM`` in ``/proc/<pid>/status``) read just before
the process is stopped. The figure that matters is the ratio of the largest backlog's peak to
the smallest's: a process whose memory grows with its backlog shows a ratio near the sizes'
ratio; a bounded one stays near 1. A 5M-event backlog takes hours through DynamoDB Local on a
2-core machine, so the sizes default to what runs in minutes (``BENCH_RSS_SIZES``) and the
bound is shown as flatness against size.

Not part of ``make bench`` (its backlogs take ~12 minutes): ``make bench-rss``, or with the
stack's environment ``.venv/bin/python -m bench resource_bounds`` (results in
``bench/results/resource_bounds.json``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from bench.common import admin_mysql, remove_run
from bench.deadline import Deadline
from replicator.adapters.mysql import connect as mysql_connect
from replicator.settings import Settings, load_settings

SIZES = [int(s) for s in os.environ.get("BENCH_RSS_SIZES", "20000,80000").split(",")]
REVERSE_SIZES = [int(s) for s in os.environ.get("BENCH_RSS_REVERSE_SIZES", "3000,12000").split(",")]
OUTAGE_S = float(os.environ.get("BENCH_RSS_OUTAGE_S", "90"))
# Backlogs above this are not drained by the writer (BENCH_RSS_SIZES=...,5000000 measures the reader
# at millions of rows, and the writer for WRITER_WINDOW_S on that Kafka backlog, without hours of
# DynamoDB Local writes).
WRITER_MAX_ROWS = int(os.environ.get("BENCH_RSS_WRITER_MAX_ROWS", "500000"))
WRITER_WINDOW_S = float(os.environ.get("BENCH_RSS_WRITER_WINDOW_S", "180"))  # the writer on a larger one
OUTAGE_ROWS_PER_S = int(os.environ.get("BENCH_RSS_OUTAGE_ROWS_PER_S", "1000"))  # written during the outage
RATE_FLOOR = 150.0  # rows/s: every deadline assumes at least this (DynamoDB Local is the slowest)
BUDGET_S = (120 + 3 * sum(min(n, WRITER_MAX_ROWS) for n in SIZES) / RATE_FLOOR + sum(SIZES) / 2000
            + sum(WRITER_WINDOW_S for n in SIZES if n > WRITER_MAX_ROWS)
            + 2 * sum(REVERSE_SIZES) / RATE_FLOOR + 2 * OUTAGE_S)
ROOT = Path(__file__).resolve().parent.parent
DDL = "CREATE TABLE t (id BIGINT PRIMARY KEY, name VARCHAR(64), n INT, payload VARCHAR(200))"


def vm_hwm_kib(pid: int) -> int:
    """The process's peak resident set (kB), as the kernel counts it."""
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
    return int(m.group(1)) if m else 0


def vm_rss_kib(pid: int) -> int:
    m = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    return int(m.group(1)) if m else 0


def metric(port: int, name: str) -> float:
    """The sum of one metric's samples on a process's /metrics (0 when it does not answer yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """One ``replicator`` sub-command as a process, its log in a file, its memory sampled."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("w")
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "replicator.cli", *args],
                                     env={**env, "REPLICATOR_METRICS__PORT": str(self.port)},
                                     stdout=self._out, stderr=subprocess.STDOUT)
        self.name = args[0]
        self.samples: list[tuple[float, int]] = []

    def sample(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(f"replicator {self.name} exited with {self.proc.returncode}: "
                               f"{self.log.read_text()[-2000:]}")
        self.samples.append((time.monotonic(), vm_rss_kib(self.proc.pid)))

    def wait_for(self, what: str, done: Any, deadline_s: float) -> None:
        deadline = Deadline(deadline_s, what)
        while not done():
            self.sample()
            deadline.check(what)
            time.sleep(0.5)
        self.sample()

    def stop(self) -> int:
        """SIGTERM; the peak RSS (MiB) read just before (0 when it had already exited)."""
        if self.proc.poll() is not None:
            self._out.close()
            return 0
        peak = vm_hwm_kib(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._out.close()
        return peak // 1024


class Run:
    """One backlog size: its own database, topics, DynamoDB tables and control-store namespace."""

    def __init__(self, rows: int, log_dir: Path) -> None:
        self.rows = rows
        self.unique = "rss" + uuid.uuid4().hex[:8]
        self.log_dir = log_dir
        self.env = {**os.environ, "REPLICATOR_KAFKA__TOPIC_PREFIX": self.unique,
                    "REPLICATOR_DYNAMODB__TABLE_PREFIX": f"{self.unique}-",
                    "REPLICATOR_CONTROL__NAMESPACE": self.unique, "REPLICATOR_LOG__LEVEL": "warning",
                    "REPLICATOR_DYNAMODB__STREAMS": "false",
                    "REPLICATOR_CUTOVER__FENCE_TABLE": f"{self.unique}.fence"}
        self.config = log_dir / f"{self.unique}.yaml"
        self.config.write_text(f"tables: [{{source: {self.unique}.t}}]\n")
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("REPLICATOR_")})
        self.settings: Settings = load_settings(tables=[{"source": f"{self.unique}.t"}])
        self.admin = mysql_connect(admin_mysql(self.settings), autocommit=True)
        self.procs: list[Proc] = []

    def close(self) -> None:
        for p in self.procs:
            p.stop()
        self.admin.close()
        remove_run(self.settings, self.unique)

    def head(self) -> tuple[str, int]:
        with self.admin.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
        return str(row[0]), int(row[1])

    def insert(self, first: int, count: int) -> None:
        with self.admin.cursor() as cur:
            for start in range(first, first + count, 5000):
                ids = range(start, min(start + 5000, first + count))
                cur.executemany(f"INSERT INTO `{self.unique}`.t VALUES (%s, %s, %s, %s)",
                                [(i, f"user-{i}", i % 1000, "p" * 150) for i in ids])

    def proc(self, name: str, *args: str) -> Proc:
        log = self.log_dir / f"{self.unique}.{name}.log"
        proc = Proc([*args, "--config", str(self.config)], self.env, log)
        self.procs.append(proc)
        return proc


def stack_pid(service: str) -> int | None:
    """The local process stack's pid of ``service`` (None on any other stack)."""
    if os.environ.get("STACK_KIND") != "processes":
        return None
    pidfile = Path(os.environ.get("STACK_DIR", ROOT / ".stack")) / "run" / f"{service}.pid"
    return int(pidfile.read_text().split()[0]) if pidfile.exists() else None  # "<pid> <start time>"


def reader_and_writer(rows: int, log_dir: Path, outage: bool) -> dict[str, Any]:
    run = Run(rows, log_dir)
    try:
        with run.admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{run.unique}`")
            cur.execute(f"USE `{run.unique}`")
            cur.execute(DDL)
        file, pos = run.head()
        run.insert(0, rows)
        reader = run.proc("reader", "run", "--from", f"{file}:{pos}")
        reader.wait_for(f"the reader to publish {rows} rows",
                        lambda: metric(reader.port, "replicator_reader_rows_total") >= rows,
                        60 + rows / RATE_FLOOR)
        out: dict[str, Any] = {"rows": rows, "reader_backlog_peak_mib": vm_hwm_kib(reader.proc.pid) // 1024}
        out["reader_peak_mib"] = reader.stop() if rows > WRITER_MAX_ROWS else 0
        from replicator.phase import set_migration_phase

        set_migration_phase(2, reason="bench_rss", settings=run.settings, force=True)
        writer = run.proc("writer", "write", "--create-tables")
        if rows > WRITER_MAX_ROWS:  # DynamoDB Local would take hours: the writer for a window of it
            t_end = time.monotonic() + WRITER_WINDOW_S
            writer.wait_for("the writer's window", lambda: time.monotonic() >= t_end, WRITER_WINDOW_S + 60)
            rss = [r // 1024 for _, r in writer.samples]
            quarter = max(1, len(rss) // 4)
            out.update({"writer_window_s": WRITER_WINDOW_S, "writer_window_applied": int(_written(writer)),
                        "writer_window_quarters_max_mib": [max(rss[i:i + quarter])
                                                           for i in range(0, len(rss), quarter)],
                        "writer_window_peak_mib": writer.stop()})
            return out
        writer.wait_for(f"the writer to apply {rows} events", lambda: _written(writer) >= rows,
                        120 + rows / RATE_FLOOR)
        out["writer_backlog_peak_mib"] = vm_hwm_kib(writer.proc.pid) // 1024
        if outage:
            out.update(_outage(run, reader, writer))
        out["reader_peak_mib"] = reader.stop()
        out["writer_peak_mib"] = writer.stop()
        return out
    finally:
        run.close()


def _written(writer: Proc) -> float:
    return (metric(writer.port, "replicator_writer_items_applied_total")
            + metric(writer.port, "replicator_writer_items_replayed_total"))


def _outage(run: Run, reader: Proc, writer: Proc) -> dict[str, Any]:
    """DynamoDB frozen for OUTAGE_S while rows keep coming through the reader."""
    pid = stack_pid("dynamodb")
    if pid is None:
        return {"outage": "skipped: needs the local process stack (STACK_KIND=processes)"}
    before = vm_rss_kib(writer.proc.pid) // 1024
    stop_loading = threading.Event()
    loaded = [0]

    def load() -> None:
        first = run.rows
        while not stop_loading.is_set():
            run.insert(first + loaded[0], OUTAGE_ROWS_PER_S // 2)
            loaded[0] += OUTAGE_ROWS_PER_S // 2
            stop_loading.wait(0.5)

    loader = threading.Thread(target=load, daemon=True)
    os.kill(pid, signal.SIGSTOP)
    try:
        loader.start()
        t_end = time.monotonic() + OUTAGE_S
        while time.monotonic() < t_end:
            writer.sample()
            reader.sample()
            time.sleep(1)
        stop_loading.set()
        loader.join(60)
        during = [r // 1024 for t, r in writer.samples if t >= t_end - OUTAGE_S]
    finally:
        os.kill(pid, signal.SIGCONT)
    total = run.rows + loaded[0]
    writer.wait_for(f"the writer to apply the {loaded[0]} rows written during the outage",
                    lambda: _written(writer) >= total,
                    300 + loaded[0] / RATE_FLOOR)
    quarter = max(1, len(during) // 4)
    return {"outage_s": OUTAGE_S, "outage_rows_written": loaded[0], "writer_rss_before_outage_mib": before,
            "writer_rss_max_during_outage_mib": max(during),
            # a bounded writer plateaus: its RSS in the outage's last quarter no higher than in its second
            "writer_rss_outage_quarters_max_mib": [max(during[i:i + quarter])
                                                   for i in range(0, len(during), quarter)],
            "reader_peak_after_outage_mib": vm_hwm_kib(reader.proc.pid) // 1024}


def reverse_run(items: int, log_dir: Path) -> dict[str, Any]:
    from consumers.writer.tables import TableSpec, ensure_tables
    from replicator.adapters.dynamodb import dynamodb_client
    from replicator.mapping import ORIGIN_APP, TableMapper
    from replicator.mapping.conditional import metadata

    run = Run(items, log_dir)
    admin = admin_mysql(run.settings)
    run.env.update({"REPLICATOR_CLIENT__MYSQL_USER": admin.user,
                    "REPLICATOR_CLIENT__MYSQL_PASSWORD": admin.password.get_secret_value(),
                    "REPLICATOR_DYNAMODB__STREAMS": "true"})
    try:
        with run.admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{run.unique}`")
            cur.execute(f"USE `{run.unique}`")
            cur.execute(DDL)
        columns = (("id", "bigint(20)"), ("name", "varchar(64)"), ("n", "int(11)"),
                   ("payload", "varchar(200)"))
        mapper = TableMapper(run.settings.tables[0], columns, ("id",))
        ddb = dynamodb_client(run.settings.dynamodb)
        table = f"{run.unique}-t"
        ensure_tables(ddb, [TableSpec(table, f"{run.unique}.t", mapper.key_attributes)], create=True)
        version = 1 << 52 | time.time_ns() // 1000
        deadline = Deadline(60 + items / RATE_FLOOR, f"writing {items} application items")
        for start in range(0, items, 25):
            pending = [{"PutRequest": {"Item": mapper.to_item(
                {"id": k, "name": f"user-{k}", "n": k % 1000, "payload": "p" * 150},
                metadata=metadata(version + k, ORIGIN_APP))}} for k in range(start, min(start + 25, items))]
            while pending:
                deadline.check(f"{start} written")
                pending = ddb.batch_write_item(RequestItems={table: pending}).get(
                    "UnprocessedItems", {}).get(table, [])
        rev = run.proc("reverse", "reverse")

        def count() -> int:
            with run.admin.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM `{run.unique}`.t")
                return int(cur.fetchone()[0])

        rev.wait_for(f"the reverse replication to apply {items} items", lambda: count() >= items,
                     120 + items / RATE_FLOOR)
        return {"items": items, "reverse_peak_mib": rev.stop()}
    finally:
        run.close()


def main() -> dict[str, Any]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    log_dir = ROOT / ".stack" / "logs" / "bench_rss"
    log_dir.mkdir(parents=True, exist_ok=True)
    with_writer = [n for n in SIZES if n <= WRITER_MAX_ROWS]
    pipeline = [reader_and_writer(n, log_dir, outage=(n == with_writer[-1] and OUTAGE_S > 0)) for n in SIZES]
    reverse = [reverse_run(n, log_dir) for n in REVERSE_SIZES]
    small, large = pipeline[0], [p for p in pipeline if "writer_backlog_peak_mib" in p][-1]
    figures: dict[str, Any] = {
        "pipeline": pipeline, "reverse": reverse,
        "size_ratio": round(SIZES[-1] / SIZES[0], 2),
        "reader_peak_ratio": round(pipeline[-1]["reader_backlog_peak_mib"]
                                   / small["reader_backlog_peak_mib"], 2),
        "writer_size_ratio": round(large["rows"] / small["rows"], 2),
        "writer_peak_ratio": round(large["writer_backlog_peak_mib"] / small["writer_backlog_peak_mib"], 2),
        "reverse_size_ratio": round(REVERSE_SIZES[-1] / REVERSE_SIZES[0], 2),
        "reverse_peak_ratio": round(reverse[-1]["reverse_peak_mib"] / reverse[0]["reverse_peak_mib"], 2),
    }
    print(f"peak RSS, MiB, per backlog size {SIZES} (reverse {REVERSE_SIZES}):")
    for p in pipeline:
        writer = (p["writer_backlog_peak_mib"] if "writer_backlog_peak_mib" in p else
                  f"{p['writer_window_peak_mib']} in its first {p['writer_window_s']:.0f} s "
                  f"({p['writer_window_applied']} applied)")
        print(f"  {p['rows']:>8} rows: reader {p['reader_backlog_peak_mib']}, writer {writer}")
    for r in reverse:
        print(f"  {r['items']:>8} items: reverse {r['reverse_peak_mib']}")
    if "writer_rss_max_during_outage_mib" in large:
        print(f"  DynamoDB outage of {OUTAGE_S:.0f} s with {large['outage_rows_written']} rows flowing: "
              "writer "
              f"{large['writer_rss_before_outage_mib']} MiB before, at most "
              f"{large['writer_rss_max_during_outage_mib']} MiB during")
    print(f"  peak ratio largest/smallest: reader {figures['reader_peak_ratio']} "
          f"(sizes x{figures['size_ratio']}), "
          f"writer {figures['writer_peak_ratio']} (x{figures['writer_size_ratio']}); "
          f"reverse (x{figures['reverse_size_ratio']}) {figures['reverse_peak_ratio']}")
    return figures

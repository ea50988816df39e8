"""Binlog reader throughput and latency (issue 3).

1. Throughput: a 1M-row-change workload is written once; then, over the same binlog range,
   (a) a bare python-mysql-replication loop that decodes every row and does nothing else,
   (b) the reader (binlog -> change events -> Kafka transactions, committed) with the row path
   ``reader.decoder`` picks (auto: the compiled one where it is built), and (c) the reader on
   its pure-Python row path are timed.
   Reported: rows/s of each and the ratios (issue 14's target: (b) >= 3x (a)).
2. Latency: at a steady 2,000 rows/s, the time from MySQL commit (the client's COMMIT returned)
   to the event's arrival at a read_committed consumer (p50, p99; target p99 < 500 ms).

Set BENCH_READER_ROWS to size the workload down for a quick look, BENCH_READER_PROFILE=1 for a
cProfile of the reader run (top functions by cumulative time).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import random
import statistics
import threading
import time
import uuid
from typing import Any

from pydantic import SecretStr

# The bare-library baseline loop is the point of this benchmark: the only vendor use outside the adapters.
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from bench.deadline import Deadline, wait_until
from bench.topics import delete_topics
from replicator.adapters.kafka import TopicPartition, consumer
from replicator.adapters.mysql import Connection, connect
from replicator.reader.gtid import StartAt
from replicator.reader.rowcodec import row_encoder
from replicator.reader.runner import ReaderOptions
from replicator.reader.service import create_reader
from replicator.settings import Settings, load_settings
from replicator.topics import table_topic

ROWS = int(os.environ.get("BENCH_READER_ROWS", "1000000"))
TX_ROWS = 100
LATENCY_RATE = 2000  # rows/s
LATENCY_SECONDS = 20
# Each pass over the range may take this long (rows/s far below any measured rate) before it fails.
PASS_DEADLINE_S = 120 + ROWS / 2000
BUDGET_S = 4 * PASS_DEADLINE_S + 180  # the whole benchmark (bench/__main__.py's watchdog)


def _admin(database: str | None = None) -> Connection[Any]:
    """A connection as the stack's administrator (creates and fills the benchmark's database)."""
    cfg = load_settings().mysql.model_copy(update={
        "user": os.environ.get("STACK_MYSQL_ADMIN_USER", "admin"),
        "password": SecretStr(os.environ.get("STACK_MYSQL_ADMIN_PASSWORD", "")),
    })
    return connect(cfg, database=database, autocommit=False, read_timeout_s=600.0)


def _head(conn: Connection[Any]) -> tuple[str, int]:
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


WORKLOAD_DDL = ("CREATE TABLE t (id INT PRIMARY KEY, a INT, b VARCHAR(40), c DECIMAL(12,2), d DATETIME(3), "
                "e BIGINT UNSIGNED)")


Range = tuple[tuple[str, int], tuple[str, int]]  # (binlog file, offset) before and after a workload


def _write_workload(db: str, changes: int = ROWS, create: bool = True) -> Range:
    """``changes`` row changes: 80 % inserts, 20 % updates (before + after images), TX_ROWS per
    transaction, into table ``t`` (created first unless ``create`` is false); the binlog range."""
    conn = _admin(db)
    rng = random.Random(7)
    with conn.cursor() as cur:
        if create:
            cur.execute(WORKLOAD_DDL)
            conn.commit()
        start = _head(conn)
        inserts = int(changes * 0.8)
        for base in range(0, inserts, TX_ROWS):
            rows = [
                (
                    i,
                    rng.randint(0, 10**6),
                    f"name-{i}-{rng.random():.6f}",
                    f"{rng.random() * 10**6:.2f}",
                    "2024-05-06 07:08:09.123",
                    i * 7919,
                )
                for i in range(base, min(base + TX_ROWS, inserts))
            ]
            cur.executemany("INSERT INTO t VALUES (%s, %s, %s, %s, %s, %s)", rows)
            conn.commit()
        for base in range(0, changes - inserts, TX_ROWS):
            cur.execute("UPDATE t SET a = a + 1 WHERE id >= %s AND id < %s", (base, base + TX_ROWS))
            conn.commit()
        end = _head(conn)
    conn.close()
    return start, end


def _bare_loop(db: str, start: tuple[str, int], end: tuple[str, int], total: int = ROWS) -> tuple[int, float]:
    """python-mysql-replication alone: decode every row of the range, do nothing else."""
    stream = BinLogStreamReader(
        connection_settings={
            "host": os.environ["REPLICATOR_MYSQL__HOST"],
            "port": int(os.environ["REPLICATOR_MYSQL__PORT"]),
            "user": os.environ["REPLICATOR_MYSQL__USER"],
            "password": os.environ["REPLICATOR_MYSQL__PASSWORD"],
        },
        server_id=random.randint(5_000_000, 6_000_000),
        log_file=start[0],
        log_pos=start[1],
        resume_stream=True,
        blocking=True,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
        only_schemas=[db],
        only_tables=["t"],
        enable_logging=False,
    )
    rows = 0
    deadline = Deadline(120 + total / 2000, f"the bare loop to read {total} rows up to {end}")
    t0 = time.perf_counter()
    try:
        for ev in stream:
            rows += len(ev.rows)
            deadline.check(f"{rows} rows read")
            if (stream.log_file, ev.packet.log_pos) >= end or rows >= total:
                break
    finally:
        stream.close()
    return rows, time.perf_counter() - t0


PREFIXES: list[str] = []  # topic prefixes this run created (deleted at the end)


def _settings(db: str, prefix: str, table: str = "t") -> Settings:
    PREFIXES.append(prefix + ".")
    os.environ["REPLICATOR_KAFKA__TOPIC_PREFIX"] = prefix
    os.environ["REPLICATOR_MYSQL__SERVER_ID"] = str(random.randint(100_000, 4_000_000))
    return load_settings(tables=[{"source": f"{db}.{table}"}])


def _reader_run(settings: Settings, start: tuple[str, int], end: tuple[str, int],
                deadline_s: float = PASS_DEADLINE_S) -> float:
    reader = create_reader(
        settings,
        start_from=StartAt(file=start[0], offset=start[1]),
        options=ReaderOptions(max_batch_rows=20000, max_batch_s=0.5, linger_s=0.1),
    )
    deadline = Deadline(deadline_s, f"the reader to commit its checkpoint at {end}")
    t0 = time.perf_counter()
    reader.start()
    try:
        while not (reader.committed and (reader.committed.file, reader.committed.offset) >= end):
            if reader.error:
                raise reader.error
            deadline.check(f"last checkpoint {reader.committed}")
            time.sleep(0.05)
        return time.perf_counter() - t0
    finally:
        reader.stop()


def _python_pass(db: str, start: tuple[str, int], end: tuple[str, int]) -> float:
    """The reader over the same range on its pure-Python row path (reader.decoder: python)."""
    os.environ["REPLICATOR_READER__DECODER"] = "python"
    try:
        return _reader_run(_settings(db, "brp" + uuid.uuid4().hex[:8]), start, end)
    finally:
        del os.environ["REPLICATOR_READER__DECODER"]


def _profile_pipeline(settings: Settings, start: tuple[str, int], rows: int) -> str:
    """cProfile of the reader's per-row work (binlog -> decoded rows -> serialised events), run
    synchronously in this thread (the reader runs it in its pump thread, which cProfile cannot see)."""
    from replicator.adapters.binlog import BinlogSource
    from replicator.reader.changes import TxContext
    from replicator.reader.items import RowsChange
    from replicator.reader.server import ServerInfo

    encoder = row_encoder(settings.reader.decoder)

    info = ServerInfo(settings.mysql)
    mapped = {t.source for t in settings.tables}
    source = BinlogSource(
        settings.mysql, StartAt(file=start[0], offset=start[1]), mapped, lambda: info.catalog(mapped)
    )
    prof = cProfile.Profile()
    seen = 0
    deadline = Deadline(PASS_DEADLINE_S, f"the profiled pass to decode {rows} rows")
    prof.enable()
    try:
        for item in source.items():
            deadline.check(f"{seen} rows decoded")
            if isinstance(item, RowsChange):
                seen += encoder.encode(item, TxContext("x", None), 0, ts_ms=0, generation=0).rows
                if seen >= rows:
                    break
    finally:
        prof.disable()
        source.close()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(20)
    return out.getvalue()


def _latency(db: str) -> tuple[float, float, int]:
    """Commit -> read_committed arrival at a steady LATENCY_RATE rows/s."""
    conn = _admin(db)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE lat (id INT PRIMARY KEY, v INT)")
        conn.commit()
    settings = _settings(db, "bl" + uuid.uuid4().hex[:8], table="lat")
    warmup_s = 2.0  # transactions of the first seconds (consumer fetch start-up) are not counted
    reader = create_reader(settings, options=ReaderOptions())
    reader.start()
    wait_until(lambda: reader.committed is not None or reader.error is not None, 60,
               "the latency reader's first checkpoint")
    if reader.error:
        raise reader.error
    topic = table_topic(settings.kafka.topic_prefix, f"{db}.lat")
    events = consumer(settings.kafka, "bench-lat", **{
        "isolation.level": "read_committed", "fetch.wait.max.ms": 5, "fetch.min.bytes": 1,
    })
    parts = events.list_topics(topic, timeout=10).topics[topic].partitions
    events.assign([TopicPartition(topic, p, 0) for p in parts])
    committed_at: dict[int, float] = {}
    latencies: list[float] = []
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            msg = events.poll(0.05)
            raw_key = None if msg is None or msg.error() else msg.key()
            if raw_key is None:
                continue
            now = time.time()
            key = int(raw_key.decode().split(":")[1].rstrip("}"))
            tx_id = key // 20
            if tx_id in committed_at and tx_id >= warmup_s * LATENCY_RATE / 20:
                latencies.append(now - committed_at[tx_id])

    thread = threading.Thread(target=consume)
    thread.start()
    per_tx, interval = 20, 20 / LATENCY_RATE
    with conn.cursor() as cur:
        t_next = time.perf_counter()
        for tx in range(LATENCY_RATE * LATENCY_SECONDS // per_tx):
            cur.executemany("INSERT INTO lat VALUES (%s, 0)", [(tx * per_tx + i,) for i in range(per_tx)])
            conn.commit()
            committed_at[tx] = time.time()
            t_next += interval
            time.sleep(max(0.0, t_next - time.perf_counter()))
    time.sleep(2)
    stop.set()
    thread.join(30)
    if thread.is_alive():
        raise RuntimeError("the latency consumer thread did not stop within 30 s")
    events.close()
    reader.stop()
    conn.close()
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    return p50, p99, len(latencies)


def main() -> dict[str, Any]:
    db = "bench_reader_" + uuid.uuid4().hex[:6]
    prefix = "br" + uuid.uuid4().hex[:8]
    conn = _admin()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{db}`")
    try:
        t0 = time.perf_counter()
        start, end = _write_workload(db)
        print(f"workload: {ROWS} row changes written in {time.perf_counter() - t0:.1f} s ({start} -> {end})")
        bare_rows, bare_s = _bare_loop(db, start, end)
        bare_rps = bare_rows / bare_s
        print(
            f"bare python-mysql-replication loop: {bare_rows} rows in {bare_s:.1f} s = {bare_rps:,.0f} rows/s"
        )
        settings = _settings(db, prefix)
        decoder = row_encoder(settings.reader.decoder).name
        reader_s = _reader_run(settings, start, end)
        reader_rps = ROWS / reader_s
        print(
            f"reader (binlog -> Kafka committed, {decoder} rows): {ROWS} rows in {reader_s:.1f} s = "
            f"{reader_rps:,.0f} rows/s"
        )
        python_s = _python_pass(db, start, end)
        python_rps = ROWS / python_s
        print(f"reader on the pure-Python row path: {ROWS} rows in {python_s:.1f} s = "
              f"{python_rps:,.0f} rows/s")
        if os.environ.get("BENCH_READER_PROFILE") == "1" or reader_rps / bare_rps < 0.75:
            print(_profile_pipeline(settings, start, min(ROWS, 200_000)))
        p50, p99, n = _latency(db)
        print(
            f"latency commit -> read_committed at {LATENCY_RATE} rows/s: p50 {p50:.0f} ms, p99 {p99:.0f} ms "
            f"({n} rows)"
        )
        return {
            "rows": ROWS,
            "bare_rows_per_s": round(bare_rps),
            "reader_rows_per_s": round(reader_rps),
            "reader_decoder": decoder,
            "ratio_reader_to_bare": round(reader_rps / bare_rps, 3),
            "ratio_target": 3.0,
            "reader_python_rows_per_s": round(python_rps),
            "ratio_python_to_bare": round(python_rps / bare_rps, 3),
            "ratio_reader_to_python": round(reader_rps / python_rps, 3),
            "latency_p50_ms": round(p50, 1),
            "latency_p99_ms": round(p99, 1),
            "latency_target_p99_ms": 500,
            "latency_rate_rows_per_s": LATENCY_RATE,
        }
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        conn.close()
        delete_topics(load_settings().kafka, tuple(PREFIXES))

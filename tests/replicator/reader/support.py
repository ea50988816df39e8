"""Helpers shared by the reader's integration tests: settings, an in-process reader, topic reads."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from replicator.adapters.kafka import TopicPartition, consumer, is_partition_eof
from replicator.events import ChangeEvent
from replicator.reader.runner import Reader, ReaderOptions
from replicator.reader.service import create_reader
from replicator.settings import Settings, load_settings
from replicator.topics import table_topic

FAST = ReaderOptions(
    max_batch_rows=500,
    max_batch_s=0.05,
    idle_checkpoint_s=0.5,
    heartbeat_s=0.5,
    backoff_initial_s=0.2,
    backoff_max_s=2.0,
    kafka_timeout_s=8.0,
)


def reader_settings(db: str, tables: list[str], monkeypatch: Any) -> Settings:
    """Settings for this test's reader: its tables mapped, a server_id no other reader uses."""
    monkeypatch.setenv("REPLICATOR_MYSQL__SERVER_ID", str(random.randint(100_000, 4_000_000)))
    return load_settings(tables=[{"source": f"{db}.{t}"} for t in tables])


def head(conn: Any) -> tuple[str, int]:
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        row = cur.fetchone()
    return str(row[0]), int(row[1])


def wait_caught_up(reader: Reader, target: tuple[str, int], timeout_s: float = 60) -> None:
    """Wait (bounded) until the reader's committed checkpoint reaches ``target``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if reader.error is not None:
            raise reader.error
        cp = reader.committed
        if cp is not None and (cp.file, cp.offset) >= target:
            return
        time.sleep(0.1)
    raise AssertionError(f"reader did not reach {target} (at {reader.committed}, error {reader.error})")


@contextmanager
def running_reader(settings: Settings, options: ReaderOptions = FAST) -> Iterator[Reader]:
    reader = create_reader(settings, options=options)
    reader.start()
    try:
        yield reader
    finally:
        reader.stop()


def read_topic(
    settings: Settings, source: str, *, min_count: int = 0, timeout_s: float = 30
) -> list[ChangeEvent]:
    """Every read_committed event of one table topic, in partition order (partitions concatenated)."""
    return [ev for _, ev in read_topic_raw(settings, source, min_count=min_count, timeout_s=timeout_s)]


def read_topic_raw(
    settings: Settings, source: str, *, min_count: int = 0, timeout_s: float = 30
) -> list[tuple[int, ChangeEvent]]:
    topic = table_topic(settings.kafka.topic_prefix, source)
    reader = consumer(settings.kafka, f"t-{random.random()}",
                      **{"isolation.level": "read_committed", "enable.partition.eof": True})
    try:
        md = reader.list_topics(topic, timeout=10).topics[topic]
        parts = sorted(md.partitions)
        reader.assign([TopicPartition(topic, p, 0) for p in parts])
        out: list[tuple[int, ChangeEvent]] = []
        eof: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = reader.poll(0.5)
            if msg is None:
                if len(eof) == len(parts) and len(out) >= min_count:
                    break
                continue
            err, partition, value = msg.error(), msg.partition(), msg.value()
            assert partition is not None
            if err is not None:
                if is_partition_eof(err):
                    eof.add(partition)
                    if len(eof) == len(parts) and len(out) >= min_count:
                        break
                    continue
                raise RuntimeError(str(err))
            assert value is not None
            eof.discard(partition)
            out.append((partition, ChangeEvent.from_json(value)))
        return out
    finally:
        reader.close()


def run_until_error(reader: Reader, timeout_s: float = 60) -> BaseException:
    """Run the reader in its thread (if not running yet) until it fails (bounded); return its error."""
    if reader.join(0):
        reader.start()
    if not reader.join(timeout_s):
        reader.stop()
        raise AssertionError(f"the reader was still running after {timeout_s} s")
    assert reader.error is not None, "the reader stopped without an error"
    return reader.error

"""The reader's ``watermark.reader`` marker on the real stack: exact last data offsets (also read
back from the topic tails after a restart, where the last record is a transaction marker) and the
server's GTID position from the first start on."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from typing import Any

import pytest

from replicator.adapters.kafka import TopicPartition, consumer, is_partition_eof
from replicator.control import names, open_control_store
from replicator.control.watermark import covers, offsets_from_doc
from replicator.settings import Settings
from replicator.topics import table_topic
from tests.replicator.reader.support import FAST, head, reader_settings, running_reader

pytestmark = pytest.mark.integration

OPTIONS = replace(FAST, idle_checkpoint_s=60.0)


def wait_marker(settings: Settings, done: Any, timeout_s: float = 30) -> dict[str, Any]:
    """The reader's marker once ``done(marker)`` holds (bounded)."""
    deadline = time.monotonic() + timeout_s
    with open_control_store(settings) as store:
        while True:
            doc = store.get_marker(names.READER_WATERMARK)
            if doc is not None and done(doc):
                return doc
            assert time.monotonic() < deadline, f"marker not reached: {doc}"
            time.sleep(0.05)


def topic_tails(settings: Settings, topic: str) -> dict[tuple[str, int], tuple[int, int]]:
    """(offset of the last read_committed record, high watermark) per partition, read independently."""
    c = consumer(settings.kafka, f"t-{random.random()}",
                 **{"isolation.level": "read_committed", "enable.partition.eof": True})
    try:
        parts = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
        highs = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts}
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        last = dict.fromkeys(parts, -1)
        eof: set[int] = set()
        deadline = time.monotonic() + 30
        while len(eof) < len(parts):
            assert time.monotonic() < deadline
            msg = c.poll(0.2)
            if msg is None:
                continue
            partition = msg.partition()
            assert partition is not None
            if msg.error() is not None:
                assert is_partition_eof(msg.error())
                eof.add(partition)
                continue
            last[partition] = int(msg.offset() or 0)
        return {(topic, p): (last[p], highs[p]) for p in parts}
    finally:
        c.close()


def test_the_marker_holds_the_last_data_offsets_also_when_read_back_after_a_restart(
    isolated_env: dict[str, str], mysql_admin: Any, mysql_db: str, kafka_cleanup: None, redis_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = reader_settings(mysql_db, ["t"], monkeypatch)
    topic = table_topic(settings.kafka.topic_prefix, f"{mysql_db}.t")
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v INT)")
        with running_reader(settings, OPTIONS):
            for i in range(12):
                cur.execute("INSERT INTO t VALUES (%s, 0), (%s, 0)", (2 * i, 2 * i + 1))
            cur.execute("SELECT @@last_gtid")
            gtid = str(cur.fetchone()[0])
            live = wait_marker(settings, lambda d: covers(d["gtid_position"], gtid))
        tails = topic_tails(settings, topic)
        assert offsets_from_doc(live["offsets"]) == {tp: last for tp, (last, _) in tails.items()}
        assert all(high - 1 > last for last, high in tails.values() if last >= 0), \
            "each partition ends with a transaction marker: high - 1 is not a data offset"

        with open_control_store(settings) as store:
            store.delete_marker(names.READER_WATERMARK)
        with running_reader(settings, OPTIONS):  # nothing new: the offsets come from the topic tails
            again = wait_marker(settings, lambda d: True)
    assert again["offsets"] == live["offsets"]
    assert again["gtid_position"] == live["gtid_position"]


def test_a_first_start_at_the_binlog_head_publishes_the_servers_gtid_position(
    isolated_env: dict[str, str], mysql_admin: Any, mysql_db: str, kafka_cleanup: None, redis_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = reader_settings(mysql_db, ["t"], monkeypatch)
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute("SELECT @@gtid_binlog_pos")
        before = str(cur.fetchone()[0])
    with running_reader(settings, OPTIONS):
        doc = wait_marker(settings, lambda d: True)
    assert covers(doc["gtid_position"], before), f"{doc['gtid_position']} does not cover {before}"
    assert doc["offsets"] == {f"{table_topic(settings.kafka.topic_prefix, f'{mysql_db}.t')}:{p}": -1
                              for p in range(settings.kafka.partitions)}
    assert head(mysql_admin)[0] in doc["position"]

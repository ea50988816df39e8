"""kill -9 of a real `replicator write` process at 20 random instants of a stream: nothing lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient

from tests.consumers.conftest import expected_table, random_stream, scan, table_state

pytestmark = pytest.mark.integration

KILLS = 20
CHUNK = 300  # events produced under each run: 6,000 events over 400 keys in all


def _start(config: Path, log: Any, instance: str) -> subprocess.Popen[bytes]:
    cmd = [str(Path(sys.executable).parent / "replicator"), "write", "--config", str(config),
           "--create-tables", "--instance-id", instance]
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))


def _committed(env: Any, partitions: int) -> int:
    admin = AdminClient({"bootstrap.servers": env.bootstrap})
    request = ConsumerGroupTopicPartitions(env.settings.writer_group,
                                           [TopicPartition(env.topic, p) for p in range(partitions)])
    result = admin.list_consumer_group_offsets([request])[env.settings.writer_group].result()
    return sum(max(tp.offset, 0) for tp in result.topic_partitions)


def _end_offsets(env: Any, partitions: int) -> int:
    c = Consumer({"bootstrap.servers": env.bootstrap, "group.id": "watermarks"})
    try:
        return sum(c.get_watermark_offsets(TopicPartition(env.topic, p), timeout=10)[1]
                   for p in range(partitions))
    finally:
        c.close()


def _heartbeat(env: Any) -> float:
    beat = env.control.get_marker("writer.heartbeat")
    return float(beat["ts"]) if beat else 0.0


def test_kill_9_at_20_random_instants_loses_nothing(writer_env: Any, dynamodb: Any, tmp_path: Path) -> None:
    config = tmp_path / "writer.yaml"
    config.write_text(yaml.safe_dump({"tables": [{"source": f"{writer_env.db}.users"}],
                                      "log": {"level": "warning"}}))
    stream = random_stream(writer_env.db, keys=400, events=KILLS * CHUNK, seed=9)
    rng = random.Random(13)
    behind_at_kill = 0
    with (tmp_path / "writer.log").open("wb") as log:
        for i in range(KILLS):
            chunk = stream[i * CHUNK:(i + 1) * CHUNK]
            started = time.time()
            proc = _start(config, log, f"{writer_env.db}-w")
            if i % 5 == 4:  # now and then while it starts up
                time.sleep(rng.uniform(0.1, 1.0))
                writer_env.produce(chunk)
            else:  # mostly while it consumes and applies the chunk produced under it
                up_by = time.monotonic() + 60
                while _heartbeat(writer_env) < started and proc.poll() is None and time.monotonic() < up_by:
                    time.sleep(0.02)
                writer_env.produce(chunk)
                time.sleep(rng.uniform(0.0, 0.8))
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL, "the writer died before it was killed"
            behind_at_kill += _committed(writer_env, 3) < (i + 1) * CHUNK
        started = time.time()
        proc = _start(config, log, f"{writer_env.db}-w")
        try:
            end = _end_offsets(writer_env, 3)
            give_up = time.monotonic() + 120
            while _committed(writer_env, 3) < end or _heartbeat(writer_env) < started:
                assert time.monotonic() < give_up, "the restarted writer did not catch up"
                assert proc.poll() is None, (tmp_path / "writer.log").read_text()[-2000:]
                time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
    assert behind_at_kill >= KILLS // 4  # kills really interrupted unapplied work
    assert table_state(scan(dynamodb, writer_env.table)) == expected_table(stream)

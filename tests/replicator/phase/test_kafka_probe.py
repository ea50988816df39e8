"""The replication-lag probe on the real broker: committed offsets against high watermarks."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from replicator.errors import ProbeError
from replicator.phase.probes import KafkaOffsetProbe
from replicator.settings import Settings
from replicator.topics import table_topic

pytestmark = pytest.mark.integration


@pytest.fixture()
def topic(settings: Settings, kafka_cleanup: None) -> str:
    name = table_topic(settings.kafka.topic_prefix, "shop.users")
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    for fut in admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)]).values():
        fut.result()
    return name


def produce_in_a_transaction(settings: Settings, topic: str, n: int) -> None:
    """As the binlog reader does: a transactional producer leaves a commit marker after the data."""
    p = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                  "transactional.id": f"{settings.kafka.topic_prefix}.test-reader"})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(n):
        p.produce(topic, key=str(i).encode(), value=b"{}")
    p.commit_transaction(30)


def consume_and_commit_like_the_writer(settings: Settings, topic: str, n: int) -> None:
    """Commit last offset + 1 per partition, the way a writer acknowledges what it applied."""
    c = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": settings.writer_group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    c.subscribe([topic])
    last: dict[int, int] = {}
    got = 0
    for _ in range(600):
        msg: Any = c.poll(0.5)
        if msg is None or msg.error():
            if got >= n:
                break
            continue
        last[msg.partition()] = msg.offset()
        got += 1
    c.commit(offsets=[TopicPartition(topic, p, o + 1) for p, o in last.items()], asynchronous=False)
    c.close()
    assert got == n


def test_a_group_that_has_not_consumed_is_behind(settings: Settings, topic: str) -> None:
    produce_in_a_transaction(settings, topic, 10)
    lags = KafkaOffsetProbe(settings.kafka).topic_lags(settings.writer_group, [topic])
    assert lags[topic] >= 10  # offsets behind: the 10 messages plus their partitions' commit markers


def test_a_writer_that_committed_everything_has_zero_lag_despite_the_commit_markers(
    settings: Settings, topic: str,
) -> None:
    produce_in_a_transaction(settings, topic, 10)
    consume_and_commit_like_the_writer(settings, topic, 10)
    assert KafkaOffsetProbe(settings.kafka).topic_lags(settings.writer_group, [topic]) == {topic: 0}


def test_an_empty_topic_has_zero_lag(settings: Settings, topic: str) -> None:
    assert KafkaOffsetProbe(settings.kafka).topic_lags(settings.writer_group, [topic]) == {topic: 0}


def test_a_missing_topic_is_a_probe_error(settings: Settings, kafka_cleanup: None) -> None:
    with pytest.raises(ProbeError, match="does not exist"):
        missing = table_topic(settings.kafka.topic_prefix, "x.y")
        KafkaOffsetProbe(settings.kafka).topic_lags(settings.writer_group, [missing])

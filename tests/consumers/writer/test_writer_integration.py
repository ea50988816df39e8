"""The writer on the real stack: idempotent, ordered per item, never backwards, nothing lost."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer

from replicator.topics import dead_letter_topic
from tests.consumers.conftest import (
    expected_table,
    make_event,
    random_stream,
    scan,
    set_phase,
    table_state,
    without_ttl,
)

pytestmark = pytest.mark.integration


def test_the_same_stream_applied_twice_gives_the_identical_table(writer_env: Any, in_process_writer: Any,
                                                                  dynamodb: Any) -> None:
    stream = random_stream(writer_env.db, keys=40, events=400, seed=1)
    w = in_process_writer()
    writer_env.produce(stream)
    w.run_until_consumed(len(stream))
    first = without_ttl(scan(dynamodb, writer_env.table))
    writer_env.produce(stream)
    w.run_until_consumed(2 * len(stream))
    assert without_ttl(scan(dynamodb, writer_env.table)) == first
    assert table_state(first) == expected_table(stream)


def test_a_shuffle_across_keys_keeping_per_key_order_gives_the_identical_table(
        writer_env: Any, in_process_writer: Any, dynamodb: Any) -> None:
    stream = random_stream(writer_env.db, keys=40, events=400, seed=2)
    w = in_process_writer()
    writer_env.produce(stream)
    w.run_until_consumed(len(stream))
    in_order = without_ttl(scan(dynamodb, writer_env.table))
    for item_key in in_order:
        dynamodb.delete_item(TableName=writer_env.table, Key={"id": {"N": str(item_key)}})
    # Interleave the per-key sub-streams at random: per-key order kept, cross-key order shuffled.
    per_key: dict[int, list[Any]] = {}
    for e in stream:
        per_key.setdefault(int(e.pk["id"]), []).append(e)
    rng, shuffled = random.Random(7), []
    queues = list(per_key.values())
    while queues:
        q = rng.choice(queues)
        shuffled.append(q.pop(0))
        queues = [x for x in queues if x]
    assert shuffled != stream
    writer_env.produce(shuffled)
    w.run_until_consumed(2 * len(stream))
    assert without_ttl(scan(dynamodb, writer_env.table)) == in_order


def test_replayed_older_events_never_move_an_item_backwards(writer_env: Any, in_process_writer: Any,
                                                             dynamodb: Any) -> None:
    stream = random_stream(writer_env.db, keys=20, events=200, seed=3)
    w = in_process_writer()
    writer_env.produce(stream)
    w.run_until_consumed(len(stream))
    before = without_ttl(scan(dynamodb, writer_env.table))
    older = list(reversed(stream[:150]))  # replayed, newest first: every one older than the item
    writer_env.produce(older)
    w.run_until_consumed(len(stream) + len(older))
    assert without_ttl(scan(dynamodb, writer_env.table)) == before
    assert w.writer.totals.replayed > 0 and w.writer.totals.applied <= len(stream)


def test_a_delete_followed_by_a_replayed_older_insert_does_not_resurrect_the_row(
        writer_env: Any, in_process_writer: Any, dynamodb: Any) -> None:
    w = in_process_writer()
    insert = make_event("c", writer_env.db, 1, version=100, n=1)
    writer_env.produce([insert, make_event("d", writer_env.db, 1, version=200, n=1)])
    w.run_until_consumed(2)
    writer_env.produce([insert])
    w.run_until_consumed(3)
    item = scan(dynamodb, writer_env.table)[1]
    assert item["_deleted"] == {"BOOL": True} and item["_version"] == {"N": "200"}
    assert "name" not in item and int(item["_ttl"]["N"]) > 0


def test_corrupt_messages_go_to_the_dead_letter_topic_and_the_writer_goes_on(
        writer_env: Any, in_process_writer: Any, dynamodb: Any) -> None:
    w = in_process_writer()
    good = [make_event("c", writer_env.db, k, version=100 + k) for k in range(5)]
    writer_env.produce(good, raw=[(b"k1", b"\x00not json"), (b"k2", b'{"v": 42, "op": "c"}')])
    w.run_until_consumed(7)
    assert set(scan(dynamodb, writer_env.table)) == set(range(5))
    c = Consumer({"bootstrap.servers": writer_env.bootstrap, "group.id": "dlq-reader-" + writer_env.db,
                  "auto.offset.reset": "earliest"})
    c.subscribe([dead_letter_topic(writer_env.settings.kafka.topic_prefix)])
    letters = []
    for _ in range(60):
        letters += [orjson.loads(m.value()) for m in c.consume(10, timeout=1) if m.error() is None]
        if len(letters) >= 2:
            break
    c.close()
    assert sorted(x["error"]["reason"] for x in letters) == ["not-json", "unknown-version"]
    assert {x["original_value"] for x in letters} == {"AG5vdCBqc29u", "eyJ2IjogNDIsICJvcCI6ICJjIn0="}


def test_in_phase_1_the_writer_consumes_nothing_until_dual_write_is_enabled(
        writer_env: Any, in_process_writer: Any, dynamodb: Any) -> None:
    set_phase(writer_env.control, 1)
    w = in_process_writer()
    writer_env.produce([make_event("c", writer_env.db, k, version=100 + k) for k in range(5)])
    for _ in range(15):
        w.writer.step()
    assert w.writer.totals.events == 0 and scan(dynamodb, writer_env.table) == {}
    set_phase(writer_env.control, 2)
    w.run_until_consumed(5)
    assert set(scan(dynamodb, writer_env.table)) == set(range(5))


def test_applied_counters_and_the_heartbeat_reach_the_control_store(writer_env: Any,
                                                                     in_process_writer: Any) -> None:
    import time

    w = in_process_writer()
    writer_env.produce([make_event("c", writer_env.db, k, version=100 + k) for k in range(5)])
    w.run_until_consumed(5)
    now = time.time()
    assert writer_env.control.window_sum("dual_write.applied", now - 600, now + 60) == 5
    beat = writer_env.control.get_marker("writer.heartbeat")
    assert beat is not None and beat["group"] == writer_env.settings.writer_group


def test_the_backlog_waiting_in_kafka_shows_in_the_consumer_lag_metric(writer_env: Any,
                                                                        in_process_writer: Any) -> None:
    import time

    w = in_process_writer()
    writer_env.produce([make_event("c", writer_env.db, k, version=100 + k) for k in range(5)])
    w.run_until_consumed(5)
    set_phase(writer_env.control, 1)
    writer_env.produce([make_event("u", writer_env.db, k, version=200 + k, n=1) for k in range(7)])
    give_up = time.monotonic() + 60  # librdkafka reports statistics every 5 s
    while w.metrics.consumer_lag._value.get() != 7:
        assert time.monotonic() < give_up, f"lag gauge stuck at {w.metrics.consumer_lag._value.get()}"
        w.writer.step()

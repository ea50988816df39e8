"""The writer's ``watermark.writer.<member>`` marker: throttle, failures, pruning, and what the
writer loop records into it. Pure: in-memory consumer, applier and control store."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.writer.applier import WriteResult
from consumers.writer.batch import DeadLetter, RawMessage
from consumers.writer.metrics import WriterMetrics
from consumers.writer.runner import Writer, WriterOptions
from consumers.writer.watermark import OffsetsPublisher
from replicator.control import names
from replicator.errors import BrokerUnavailable, ControlStoreUnavailable
from replicator.settings import load_settings
from replicator.testing import (
    ManualClock,
    MemoryApplier,
    MemoryControlStore,
    MemoryDeadLetters,
    MemoryEventConsumer,
)
from tests.consumers.conftest import make_event, set_phase

TOPIC = "cdc.shop.users"
MARKER = names.writer_offsets_marker("w1")


class FlakyStore(MemoryControlStore):
    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.puts = 0

    def put_marker(self, name: str, doc: dict[str, Any]) -> None:
        if self.down:
            raise ControlStoreUnavailable("down")
        self.puts += 1
        super().put_marker(name, doc)


def offsets_of(store: MemoryControlStore, name: str = MARKER) -> dict[str, int] | None:
    doc = store.get_marker(name)
    return None if doc is None else dict(doc["offsets"])


# --------------------------------------------------------------------------- the publisher

def test_writes_are_throttled_and_the_last_change_goes_out_when_due() -> None:
    store, clock = FlakyStore(), ManualClock(100.0)
    pub = OffsetsPublisher(store, "w1", "g", interval_s=0.05, clock=clock)
    assert pub.wait_s() is None, "nothing to publish yet"
    pub.record({(TOPIC, 0): 5})
    assert pub.publish_due() and offsets_of(store) == {f"{TOPIC}:0": 5}
    pub.record({(TOPIC, 0): 9, (TOPIC, 1): 2})
    assert pub.wait_s() == pytest.approx(0.05) and not pub.publish_due()
    clock.advance(0.05)
    assert pub.publish_due() and offsets_of(store) == {f"{TOPIC}:0": 9, f"{TOPIC}:1": 2}
    assert store.puts == 2


def test_offsets_only_move_forward_and_uncommitted_ones_are_ignored() -> None:
    store = FlakyStore()
    pub = OffsetsPublisher(store, "w1", "g", clock=ManualClock(0.0))
    pub.record({(TOPIC, 0): 9})
    pub.record({(TOPIC, 0): 4, (TOPIC, 1): -1001})
    assert pub.offsets == {(TOPIC, 0): 9}


def test_a_store_that_is_down_is_counted_and_retried_later_never_raised() -> None:
    store, clock = FlakyStore(), ManualClock(0.0)
    pub = OffsetsPublisher(store, "w1", "g", retry_s=1.0, clock=clock)
    store.down = True
    pub.record({(TOPIC, 0): 3})
    assert not pub.publish_due() and pub.failures == 1
    store.down = False
    clock.advance(0.5)
    assert not pub.publish_due(), "not before retry_s"
    clock.advance(0.5)
    assert pub.publish_due() and offsets_of(store) == {f"{TOPIC}:0": 3}


def test_a_live_member_refreshes_its_marker() -> None:
    store, clock = FlakyStore(), ManualClock(0.0)
    pub = OffsetsPublisher(store, "w1", "g", refresh_s=60.0, clock=clock)
    pub.record({(TOPIC, 0): 3})
    pub.publish_due()
    clock.advance(59.0)
    assert not pub.publish_due()
    clock.advance(1.0)
    assert pub.publish_due() and store.puts == 2


def test_markers_of_members_silent_for_long_are_pruned_once() -> None:
    store = FlakyStore()
    now = 1_000_000.0
    store.put_marker(names.writer_offsets_marker("dead"), {"ts": now - 90_000, "offsets": {}})
    store.put_marker(names.writer_offsets_marker("alive"), {"ts": now - 10, "offsets": {}})
    pub = OffsetsPublisher(store, "w1", "g", prune_after_s=86_400, clock=ManualClock(0.0), wall=lambda: now)
    pub.record({(TOPIC, 0): 1})
    pub.publish_due()
    assert sorted(store.list_markers(names.WRITER_OFFSETS_PREFIX)) == [
        names.writer_offsets_marker("alive"), MARKER]


# --------------------------------------------------------------------------- in the writer loop

class AssignedConsumer:
    """An idle consumer that names its member and reports assignments (as KafkaEventConsumer does)."""

    def __init__(self, assigned: list[tuple[str, int]], group_offsets: dict[tuple[str, int], int]) -> None:
        self.assigned, self.group_offsets, self.fail = assigned, group_offsets, 0

    def start(self) -> None: ...
    def close(self) -> None: ...
    def pause_all(self) -> None: ...
    def resume_all(self) -> None: ...
    def commit(self, offsets: dict[tuple[str, int], int]) -> None: ...

    def poll_batch(self, max_messages: int, timeout: float) -> list[RawMessage]:
        return []

    @property
    def member_id(self) -> str:
        return "w1"

    def take_assigned(self) -> list[tuple[str, int]]:
        taken, self.assigned = self.assigned, []
        return taken

    def committed(self, partitions: list[tuple[str, int]], timeout: float = 10) -> dict[tuple[str, int], int]:
        if self.fail:
            self.fail -= 1
            raise BrokerUnavailable("coordinator not available")
        return {tp: self.group_offsets.get(tp, -1001) for tp in partitions}


def writer(consumer: MemoryEventConsumer[RawMessage] | AssignedConsumer,
           control: MemoryControlStore) -> Writer:
    set_phase(control, 2)
    applier = MemoryApplier(WriteResult)
    applier.start()
    return Writer(load_settings(tables=[{"source": "shop.users"}]), consumer, applier,
                  MemoryDeadLetters[DeadLetter](), control, WriterMetrics(),
                  WriterOptions(phase_refresh_s=0, assignment_retry_s=0))


def messages(partition: int, offsets: range) -> list[RawMessage]:
    return [RawMessage(TOPIC, partition, i, b"k", make_event("c", "shop", i, 10 + i).to_json())
            for i in offsets]


def test_a_committed_batch_is_published_as_next_offsets() -> None:
    control = MemoryControlStore()
    w = writer(MemoryEventConsumer(messages(0, range(3)) + messages(1, range(7, 9))), control)
    w.step()
    markers = control.list_markers(names.WRITER_OFFSETS_PREFIX)
    assert [doc["offsets"] for doc in markers.values()] == [{f"{TOPIC}:0": 3, f"{TOPIC}:1": 9}]


def test_partitions_assigned_but_not_consumed_are_published_with_the_groups_offsets() -> None:
    control = MemoryControlStore()
    consumer = AssignedConsumer([(TOPIC, 0), (TOPIC, 1), (TOPIC, 2)], {(TOPIC, 0): 40, (TOPIC, 1): 7})
    consumer.fail = 1  # the first look-up fails: retried on the next step
    w = writer(consumer, control)
    w.step()
    assert offsets_of(control) is None
    w.step()
    assert offsets_of(control) == {f"{TOPIC}:0": 40, f"{TOPIC}:1": 7}, "partition 2: no commit, no claim"


def test_the_poll_is_shortened_to_when_a_pending_marker_write_is_due() -> None:
    control = MemoryControlStore()
    w = writer(MemoryEventConsumer(messages(0, range(2))), control)
    w.step()
    w.watermark.record({(TOPIC, 0): 50})  # within the interval of the write the batch made
    assert 0 < w._poll_timeout() <= w.options.watermark_interval_s


def test_stopping_the_loop_flushes_the_last_offsets() -> None:
    control = MemoryControlStore()
    w = writer(MemoryEventConsumer(messages(0, range(2))), control)
    w.step()
    w.watermark.record({(TOPIC, 0): 50})
    w.stop_event.set()
    w.run()
    markers = control.list_markers(names.WRITER_OFFSETS_PREFIX)
    assert [doc["offsets"] for doc in markers.values()] == [{f"{TOPIC}:0": 50}]

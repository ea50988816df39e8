"""When cascades run against the consumed stream (consumers.writer.cascade.order)."""

from __future__ import annotations

from typing import Any

from consumers.writer.batch import RawMessage
from consumers.writer.cascade.order import TP, CascadeOrder
from replicator.events import ChangeEvent, Position, TxInfo
from replicator.mapping import writes_for_event
from tests.consumers.writer.cascade.fakes import World, fk

PARENT, CHILD, GRAND = "t.d.parent", "t.d.child", "t.d.grand"


class View:
    """The consumer's offsets: ends as the broker has them, positions as polled."""

    def __init__(self, ends: dict[TP, int]) -> None:
        self.ends = ends
        self.polled: dict[TP, int] = {}
        self.committed_offsets: dict[TP, int] = {}
        self.rebalanced = 0

    def rebalances(self) -> int:
        return self.rebalanced

    def assignment(self) -> list[TP]:
        return list(self.ends)

    def positions(self, partitions: list[TP]) -> dict[TP, int]:
        return {tp: self.polled.get(tp, -1001) for tp in partitions}

    def end_offsets(self, partitions: list[TP]) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in partitions}

    def committed(self, partitions: list[TP], timeout: float = 10) -> dict[TP, int]:
        return {tp: self.committed_offsets.get(tp, -1001) for tp in partitions}

    def partitions_of(self, topics: list[str]) -> list[TP]:
        return [tp for tp in self.ends if tp[0] in topics]


def _event(op: str, table: str, row: dict[str, Any], version: int) -> ChangeEvent:
    return ChangeEvent(op=op, db="d", table=table, pk={"id": row["id"]},  # type: ignore[arg-type]
                       before=row if op in ("u", "d") else None, after=row if op != "d" else None,
                       pos=Position("b.000001", version), version=version, ts_ms=0, tx=TxInfo("", 0),
                       schema="s")


class Rig:
    def __init__(self, ends: dict[TP, int], on_update: str = "RESTRICT") -> None:
        # child has children of its own: its later changes wait for a parent's cascade; grand's do not.
        self.world = World({"parent": (("id",), ("id",)), "child": (("id", "pid"), ("id",)),
                            "grand": (("id", "cid"), ("id",))},
                           [fk("child", "parent", on_update=on_update), fk("grand", "child", ("cid",))])
        self.view = View(ends)
        self.commits: list[dict[TP, int]] = []
        self.applied: list[tuple[str, int]] = []
        topics = {PARENT: "d.parent", CHILD: "d.child", GRAND: "d.grand"}
        self.order = CascadeOrder(self.world.graph, self.world.executor, topics, self.view,
                                  self.commits.append, barrier_timeout_s=1e9, clock=lambda: 0.0)

    def apply(self, messages: list[RawMessage]) -> None:
        """The writer's apply_batch: write every event, then commit what the order allows."""
        offsets: dict[TP, int] = {}
        for m in messages:
            assert m.value is not None
            event = ChangeEvent.from_json(m.value)
            self.applied.append((event.table, event.version))
            for w in writes_for_event(self.world.mappers[event.source], event.table, event, 0.0, 3600):
                self.world.db.put(w)
            offsets[(m.topic, m.partition)] = m.offset + 1
        self.commits.append(self.order.cap(offsets))

    def committed(self) -> dict[TP, int]:
        """The offsets committed last per partition."""
        out: dict[TP, int] = {}
        for commit in self.commits:
            out.update(commit)
        return out

    def poll(self, *messages: tuple[TP, int, ChangeEvent]) -> None:
        raw = []
        for (topic, partition), offset, event in messages:
            raw.append(RawMessage(topic, partition, offset, b"k", event.to_json()))
            self.view.polled[(topic, partition)] = offset + 1
        self.order.step(raw, self.apply)


def test_a_cascade_waits_for_a_childs_earlier_insert_from_a_lagging_partition() -> None:
    rig = Rig({(PARENT, 0): 2, (CHILD, 0): 1, (CHILD, 1): 1})
    rig.poll(((PARENT, 0), 0, _event("c", "parent", {"id": 1}, 10)),
             ((PARENT, 0), 1, _event("d", "parent", {"id": 1}, 100)),
             ((CHILD, 0), 0, _event("c", "child", {"id": 7, "pid": 1}, 110)))  # after the delete
    assert rig.order.pending and rig.applied == [("parent", 10), ("parent", 100)]
    assert rig.commits[-1] == {(PARENT, 0): 0}  # not past the insert (version 10 not passed everywhere)
    rig.poll(((CHILD, 1), 0, _event("c", "child", {"id": 5, "pid": 1}, 90)))  # before the delete
    assert not rig.order.pending
    assert rig.applied[-2:] == [("child", 90), ("child", 110)]
    assert rig.world.row("child", {"id": 5}) is None  # the cascade found it
    assert rig.world.row("child", {"id": 7}) == ({"id": 7, "pid": 1}, 110)  # inserted after: survives
    assert rig.committed() == {(PARENT, 0): 2, (CHILD, 0): 1, (CHILD, 1): 1}


def test_a_later_child_change_waits_in_memory_and_is_not_committed_before_the_cascade() -> None:
    rig = Rig({(PARENT, 0): 1, (CHILD, 0): 2, (CHILD, 1): 1})
    rig.poll(((PARENT, 0), 0, _event("d", "parent", {"id": 1}, 100)))
    rig.poll(((CHILD, 0), 0, _event("c", "child", {"id": 7, "pid": 1}, 120)))
    assert rig.order.pending and ("child", 120) not in rig.applied  # partition 1 may hold older ones
    assert rig.order.cap({(CHILD, 0): 1}) == {(CHILD, 0): 0}
    rig.poll(((CHILD, 1), 0, _event("c", "child", {"id": 8, "pid": 2}, 95)))
    assert not rig.order.pending and rig.applied[-2:] == [("child", 95), ("child", 120)]
    assert rig.world.row("child", {"id": 7}) is not None


def test_a_partition_that_delivered_a_later_version_needs_no_end_offset() -> None:
    rig = Rig({(PARENT, 0): 1, (CHILD, 0): 10**6})  # its end is far: a backlog not read yet
    rig.poll(((PARENT, 0), 0, _event("d", "parent", {"id": 1}, 100)),
             ((CHILD, 0), 0, _event("c", "child", {"id": 7, "pid": 1}, 120)))
    assert not rig.order.pending and rig.applied[-1] == ("child", 120)


def test_a_primary_key_update_of_the_parent_cascades_as_an_update() -> None:
    rig = Rig({(PARENT, 0): 2, (PARENT, 1): 1, (CHILD, 0): 1}, on_update="CASCADE")
    rig.poll(((CHILD, 0), 0, _event("c", "child", {"id": 5, "pid": 1}, 50)),
             ((PARENT, 1), 0, _event("c", "parent", {"id": 2}, 101)),  # the new key: the insert half
             ((PARENT, 0), 0, _event("c", "parent", {"id": 1}, 10)),
             ((PARENT, 0), 1, _event("d", "parent", {"id": 1}, 100)))
    assert not rig.order.pending
    assert rig.world.row("child", {"id": 5}) == ({"id": 5, "pid": 2}, 100)


def test_tables_outside_the_cascade_family_pass_straight_through() -> None:
    rig = Rig({(PARENT, 0): 1, (CHILD, 0): 5})  # child messages not consumed yet: the cascade waits
    rig.poll(((PARENT, 0), 0, _event("d", "parent", {"id": 1}, 100)))
    other = RawMessage("t.d.other", 0, 0, b"k", b"{}")
    seen: list[list[RawMessage]] = []
    rig.order.step([other], seen.append)
    assert seen == [[other]] and rig.order.pending


def test_after_a_rebalance_the_order_starts_over_from_the_committed_offsets() -> None:
    rig = Rig({(PARENT, 0): 1, (CHILD, 0): 2, (CHILD, 1): 1})
    rig.poll(((PARENT, 0), 0, _event("d", "parent", {"id": 1}, 100)),
             ((CHILD, 0), 0, _event("c", "child", {"id": 7, "pid": 1}, 120)))
    assert rig.order.pending and rig.order.held
    rig.view.rebalanced += 1  # the consumer rewinds to the commits: the delete comes again
    rig.poll(((PARENT, 0), 0, _event("d", "parent", {"id": 1}, 100)))
    assert [t.version for t in rig.order.pending] == [100] and not rig.order.held
    assert rig.order.cap({(PARENT, 0): 1, (CHILD, 0): 1}) == {(PARENT, 0): 0, (CHILD, 0): 1}


def test_a_later_change_of_a_leaf_table_does_not_wait_for_the_cascade() -> None:
    rig = Rig({(PARENT, 0): 1, (CHILD, 0): 1, (GRAND, 0): 1})
    rig.poll(((PARENT, 0), 0, _event("d", "parent", {"id": 1}, 100)),
             ((GRAND, 0), 0, _event("c", "grand", {"id": 9, "cid": 3}, 130)))
    assert rig.order.pending and ("grand", 130) in rig.applied


def test_the_new_key_of_a_parent_is_not_committed_before_its_old_keys_delete_has_cascaded() -> None:
    rig = Rig({(PARENT, 0): 1, (PARENT, 1): 1, (CHILD, 0): 2}, on_update="CASCADE")
    rig.poll(((PARENT, 1), 0, _event("c", "parent", {"id": 2}, 101)))  # the insert half arrives first
    assert ("parent", 101) in rig.applied and rig.order.cap({(PARENT, 1): 1}) == {(PARENT, 1): 0}
    rig.poll(((PARENT, 0), 0, _event("d", "parent", {"id": 1}, 100)),
             ((CHILD, 0), 0, _event("c", "child", {"id": 5, "pid": 2}, 120)))
    rig.poll(((CHILD, 0), 1, _event("c", "child", {"id": 6, "pid": 2}, 130)))
    assert not rig.order.pending and rig.order.cap({(PARENT, 0): 1, (PARENT, 1): 1}) == {
        (PARENT, 0): 1, (PARENT, 1): 1}
    assert rig.committed()[(PARENT, 1)] == 1


def test_a_primary_key_update_whose_halves_share_a_partition_waits_for_the_insert_half() -> None:
    rig = Rig({(PARENT, 0): 2, (CHILD, 0): 1}, on_update="CASCADE")
    rig.poll(((CHILD, 0), 0, _event("c", "child", {"id": 5, "pid": 1}, 50)),
             ((PARENT, 0), 0, _event("d", "parent", {"id": 1}, 100)))
    assert rig.order.pending  # the insert half, one version above, may follow in this partition
    rig.poll(((PARENT, 0), 1, _event("c", "parent", {"id": 2}, 101)))
    assert not rig.order.pending and rig.world.row("child", {"id": 5}) == ({"id": 5, "pid": 2}, 100)


def _snapshot_delete(table: str, row: dict[str, Any], version: int) -> ChangeEvent:
    """A delete of a row a snapshot found gone (the backfill's absence sweep): a snapshot's version."""
    return ChangeEvent(op="d", db="d", table=table, pk={"id": row["id"]}, before=row, after=None,
                       pos=Position("b.000001", version), version=version, ts_ms=0,
                       tx=TxInfo(f"snapshot:b.000001:{version}", 0), schema="s")


def test_a_snapshot_delete_cascades_as_a_delete_even_with_an_insert_one_version_above() -> None:
    rig = Rig({(PARENT, 0): 1, (PARENT, 1): 1, (CHILD, 0): 1}, on_update="CASCADE")
    rig.poll(((CHILD, 0), 0, _event("c", "child", {"id": 5, "pid": 1}, 50)),
             ((PARENT, 1), 0, _event("c", "parent", {"id": 2}, 100)),  # an unrelated insert at S + 1
             ((PARENT, 0), 0, _snapshot_delete("parent", {"id": 1}, 99)))
    assert not rig.order.pending
    assert rig.world.row("child", {"id": 5}) is None  # deleted, not moved under parent 2


def test_a_snapshot_delete_does_not_count_as_its_partition_passing_a_cascade() -> None:
    rig = Rig({(PARENT, 0): 1, (CHILD, 0): 2, (CHILD, 1): 1})
    rig.poll(((PARENT, 0), 0, _event("d", "parent", {"id": 1}, 100)),
             ((CHILD, 1), 0, _event("c", "child", {"id": 8, "pid": 2}, 130)))
    rig.poll(((CHILD, 0), 0, _snapshot_delete("child", {"id": 6, "pid": 3}, 150)))
    assert rig.order.pending  # partition 0 may still hold a stream change older than the delete
    rig.poll(((CHILD, 0), 1, _event("c", "child", {"id": 5, "pid": 1}, 90)))
    assert not rig.order.pending and rig.world.row("child", {"id": 5}) is None

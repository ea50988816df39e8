"""A parent change -> its children's changes at the parent's version (consumers.writer.cascade.executor)."""

from __future__ import annotations

from typing import Any

import pytest

from replicator.events import ChangeEvent, Position, TxInfo
from tests.consumers.writer.cascade.fakes import World, fk

TABLES = {
    "parent": (("id",), ("id",)),
    "child": (("id", "pid"), ("id",)),
    "grand": (("id", "cid"), ("id",)),
}
CHAIN = [fk("child", "parent", on_update="CASCADE"), fk("grand", "child", ("cid",))]


def _chain() -> World:
    world = World(TABLES, CHAIN)
    world.put("parent", {"id": 1}, 10)
    world.put("parent", {"id": 2}, 11)
    for child, pid in ((1, 1), (2, 1), (3, 2)):
        world.put("child", {"id": child, "pid": pid}, 20 + child)
        world.put("grand", {"id": child * 10, "cid": child}, 30 + child)
    return world


def test_a_parent_delete_deletes_children_and_grandchildren_at_the_parents_version() -> None:
    world = _chain()
    stats = world.executor.cascade("d.parent", {"id": 1}, None, 100, 0.0)
    assert world.row("child", {"id": 1}) is None and world.row("child", {"id": 2}) is None
    assert world.row("grand", {"id": 10}) is None and world.row("grand", {"id": 20}) is None
    assert world.version("child", {"id": 1}) == 100 and world.version("grand", {"id": 20}) == 100
    assert world.row("child", {"id": 3}) == ({"id": 3, "pid": 2}, 23)  # another parent's child
    assert world.row("grand", {"id": 30}) == ({"id": 30, "cid": 3}, 33)
    assert (stats.applied, stats.depth) == (4, 2)
    assert sorted(world.applied) == [("d.child", "delete", 1)] * 2 + [("d.grand", "delete", 1)] * 2


def test_a_child_changed_after_the_cascade_survives_it() -> None:
    world = _chain()
    world.put("child", {"id": 2, "pid": 1}, 150)  # re-inserted under the re-inserted parent
    world.executor.cascade("d.parent", {"id": 1}, None, 100, 0.0)
    assert world.row("child", {"id": 2}) == ({"id": 2, "pid": 1}, 150)
    assert world.row("child", {"id": 1}) is None


def test_a_replayed_cascade_changes_nothing() -> None:
    world = _chain()
    world.executor.cascade("d.parent", {"id": 1}, None, 100, 0.0)
    before = dict(world.db.items)
    stats = world.executor.cascade("d.parent", {"id": 1}, None, 100, 0.0)
    assert world.db.items == before and stats.applied == 0


@pytest.mark.parametrize("crash_after", range(7))
def test_a_cascade_killed_part_way_and_run_again_reaches_every_level(crash_after: int) -> None:
    world = _chain()
    world.executor.applier.crash_after = crash_after  # type: ignore[attr-defined]
    with pytest.raises(KeyboardInterrupt):
        world.executor.cascade("d.parent", {"id": 1}, None, 100, 0.0)
    world.executor.applier.crash_after = -1  # type: ignore[attr-defined]
    world.executor.cascade("d.parent", {"id": 1}, None, 100, 0.0)  # the trigger is re-delivered
    gone = (("child", 1), ("child", 2), ("grand", 10), ("grand", 20))
    assert [world.row(t, {"id": k}) for t, k in gone] == [None] * 4
    assert world.row("grand", {"id": 30}) is not None


def test_on_update_cascade_rewrites_the_childrens_foreign_key() -> None:
    world = _chain()
    world.executor.cascade("d.parent", {"id": 1}, {"id": 7}, 100, 0.0)
    assert world.row("child", {"id": 1}) == ({"id": 1, "pid": 7}, 100)
    assert world.row("grand", {"id": 10}) == ({"id": 10, "cid": 1}, 31)  # the child's key did not change


def test_on_update_cascade_of_a_foreign_key_in_the_childs_key_moves_the_item() -> None:
    world = World({"parent": (("id",), ("id",)), "line": (("pid", "n"), ("pid", "n"))},
                  [fk("line", "parent", on_delete="RESTRICT", on_update="CASCADE")])
    world.put("line", {"pid": 1, "n": 1}, 20)
    world.put("line", {"pid": 1, "n": 2}, 21)
    world.executor.cascade("d.parent", {"id": 1}, {"id": 5}, 100, 0.0)
    assert world.row("line", {"pid": 1, "n": 1}) is None and world.version("line", {"pid": 1, "n": 1}) == 100
    assert world.row("line", {"pid": 5, "n": 2}) == ({"pid": 5, "n": 2}, 100)


def test_set_null_leaves_the_child_without_its_foreign_key() -> None:
    world = World({"parent": (("id",), ("id",)), "child": (("id", "pid"), ("id",))},
                  [fk("child", "parent", on_delete="SET NULL")])
    world.put("child", {"id": 1, "pid": 1}, 20)
    world.executor.cascade("d.parent", {"id": 1}, None, 100, 0.0)
    assert world.row("child", {"id": 1}) == ({"id": 1, "pid": None}, 100)
    assert world.applied == [("d.child", "set_null", 1)]


def test_two_set_null_keys_reached_by_one_change_are_both_applied() -> None:
    world = World({"parent": (("id",), ("id",)), "pair": (("id", "a", "b"), ("id",))},
                  [fk("pair", "parent", ("a",), on_delete="SET NULL", name="fa"),
                   fk("pair", "parent", ("b",), on_delete="SET NULL", name="fb")])
    world.put("pair", {"id": 1, "a": 1, "b": 1}, 20)
    world.executor.cascade("d.parent", {"id": 1}, None, 100, 0.0)
    assert world.row("pair", {"id": 1}) == ({"id": 1, "a": None, "b": None}, 100)


def test_a_self_reference_cascades_down_to_innodbs_depth_of_15() -> None:
    world = World({"emp": (("id", "pid"), ("id",))}, [fk("emp", "emp")])
    world.put("emp", {"id": 0, "pid": None}, 1)
    for i in range(1, 20):
        world.put("emp", {"id": i, "pid": i - 1}, 1 + i)
    stats = world.executor.cascade("d.emp", {"id": 0, "pid": None}, None, 100, 0.0)
    assert stats.depth == 15
    assert [i for i in range(1, 20) if world.row("emp", {"id": i}) is None] == list(range(1, 16))


def test_a_self_reference_cycle_ends() -> None:
    world = World({"emp": (("id", "pid"), ("id",))}, [fk("emp", "emp")])
    world.put("emp", {"id": 1, "pid": 2}, 1)
    world.put("emp", {"id": 2, "pid": 1}, 2)
    stats = world.executor.cascade("d.emp", {"id": 1, "pid": 2}, None, 100, 0.0)
    assert world.row("emp", {"id": 2}) is None and stats.depth <= 2


def _snapshot(table: str, row: dict[str, Any], version: int) -> ChangeEvent:
    return ChangeEvent(op="r", db="d", table=table, pk={"id": row["id"]}, before=None, after=row,
                       pos=Position("b.000001", version), version=version, ts_ms=0, tx=TxInfo("", 0),
                       schema="s")


def test_a_snapshot_row_applied_after_a_cascade_that_passed_it_is_deleted_with_its_children() -> None:
    world = World(TABLES, CHAIN)
    world.executor.cascade("d.parent", {"id": 1}, None, 100, 0.0)  # nothing there yet: records only
    world.put("child", {"id": 1, "pid": 1}, 50)  # the backfill's rows, read before the delete
    world.put("grand", {"id": 10, "cid": 1}, 50)
    world.executor.snapshot_rows([_snapshot("grand", {"id": 10, "cid": 1}, 50)], 0.0)
    assert world.row("grand", {"id": 10}) is not None  # the child has no record yet: nothing known
    world.executor.snapshot_rows([_snapshot("child", {"id": 1, "pid": 1}, 50)], 0.0)
    assert world.row("child", {"id": 1}) is None and world.version("child", {"id": 1}) == 100
    assert world.row("grand", {"id": 10}) is None  # cascaded on from the converted child


def test_a_snapshot_row_already_replaced_by_a_stream_change_is_left_alone() -> None:
    world = World(TABLES, CHAIN)
    world.executor.cascade("d.parent", {"id": 1}, None, 100, 0.0)
    world.put("child", {"id": 1, "pid": 1}, 150)  # inserted again after the delete
    world.executor.snapshot_rows([_snapshot("child", {"id": 1, "pid": 1}, 50)], 0.0)
    assert world.row("child", {"id": 1}) == ({"id": 1, "pid": 1}, 150)


def test_a_snapshot_row_read_after_the_cascade_is_not_touched() -> None:
    world = World(TABLES, CHAIN)
    world.executor.cascade("d.parent", {"id": 1}, None, 100, 0.0)
    world.put("child", {"id": 1, "pid": 1}, 120)
    world.executor.snapshot_rows([_snapshot("child", {"id": 1, "pid": 1}, 120)], 0.0)
    assert world.row("child", {"id": 1}) == ({"id": 1, "pid": 1}, 120)


def test_independent_deletes_cascade_together_in_one_request() -> None:
    world = _chain()
    applier = world.executor.applier
    calls = len(applier.calls)  # type: ignore[attr-defined]
    both = [("d.parent", {"id": 1}, None, 100), ("d.parent", {"id": 2}, None, 101)]
    stats = world.executor.cascade_many(both, 0.0)  # type: ignore[arg-type]
    assert stats is not None and stats.applied == 6
    assert len(applier.calls) == calls + 1  # type: ignore[attr-defined]
    assert world.version("child", {"id": 3}) == 101 and world.version("grand", {"id": 10}) == 100


def test_deletes_reaching_one_row_or_an_update_are_left_to_run_one_by_one() -> None:
    world = _chain()
    assert world.executor.cascade_many([("d.parent", {"id": 1}, None, 100),
                                        ("d.child", {"id": 1, "pid": 1}, None, 101)], 0.0) is None
    assert world.executor.cascade_many([("d.parent", {"id": 2}, None, 100),
                                        ("d.parent", {"id": 1}, {"id": 5}, 101)], 0.0) is None
    assert world.row("child", {"id": 1}) is not None and world.row("child", {"id": 3}) is not None


def test_a_child_written_after_the_cascade_is_neither_moved_nor_followed() -> None:
    world = World({"parent": (("id",), ("id",)), "line": (("pid", "n"), ("pid", "n"))},
                  [fk("line", "parent", on_delete="RESTRICT", on_update="CASCADE")])
    world.put("line", {"pid": 1, "n": 1}, 20)
    world.put("line", {"pid": 1, "n": 9}, 150)  # a later change, applied before the cascade ran
    world.executor.cascade("d.parent", {"id": 1}, {"id": 5}, 100, 0.0)
    assert world.row("line", {"pid": 1, "n": 9}) == ({"pid": 1, "n": 9}, 150)
    assert world.row("line", {"pid": 5, "n": 9}) is None
    assert world.row("line", {"pid": 5, "n": 1}) == ({"pid": 5, "n": 1}, 100)


def test_a_child_written_a_moment_ago_and_not_yet_in_the_lagging_index_is_still_deleted() -> None:
    world = _chain()
    world.db.index_view = dict(world.db.items)  # the GSI stops here
    world.put("child", {"id": 4, "pid": 1}, 60)
    world.executor.note_written("d.child", {"id": 4, "pid": 1})  # the order notes what the writer applies
    world.executor.cascade("d.parent", {"id": 1}, None, 100, 0.0)
    assert world.row("child", {"id": 4}) is None and world.version("child", {"id": 4}) == 100


def test_a_child_written_before_the_window_and_missing_from_the_index_is_not_found() -> None:
    world = _chain()
    world.executor.recent.window_s = 0  # nothing remembered: the index alone decides
    world.db.index_view = dict(world.db.items)
    world.put("child", {"id": 4, "pid": 1}, 60)
    world.executor.note_written("d.child", {"id": 4, "pid": 1})
    world.executor.cascade("d.parent", {"id": 1}, None, 100, 0.0)
    assert world.row("child", {"id": 4}) == ({"id": 4, "pid": 1}, 60)  # what the window is for


def test_set_null_makes_the_new_row_from_the_table_not_from_a_stale_index_copy() -> None:
    world = World({"parent": (("id",), ("id",)), "note": (("id", "pid", "qty"), ("id",))},
                  [fk("note", "parent", on_delete="SET NULL")])
    world.put("note", {"id": 1, "pid": 7, "qty": 1}, 20)
    world.db.index_view = dict(world.db.items)
    world.put("note", {"id": 1, "pid": 7, "qty": 2}, 50)  # the index still shows qty 1
    world.executor.cascade("d.parent", {"id": 7}, None, 100, 0.0)
    assert world.row("note", {"id": 1}) == ({"id": 1, "pid": None, "qty": 2}, 100)

"""The backfill's copy order and absence sweep around foreign-key cascades (pure parts)."""

from __future__ import annotations

from replicator.backfill.absence import copy_order, sweep_events, swept_tables
from replicator.backfill.source import Chunk
from replicator.catalog import TableShape
from replicator.events import ChangeEvent, snapshot_version
from replicator.mapping import TableMapper
from replicator.mapping.foreign_keys import CascadeGraph, ForeignKey
from replicator.settings import TableMapping

MAPPED = ("d.parent", "d.child", "d.grand", "d.emp", "d.other")


def _fk(child: str, parent: str, on_delete: str = "CASCADE") -> ForeignKey:
    return ForeignKey(f"fk_{child}", f"d.{child}", ("pid",), f"d.{parent}", ("id",),
                      on_delete=on_delete)  # type: ignore[arg-type]


GRAPH = CascadeGraph([_fk("grand", "child"), _fk("child", "parent"), _fk("emp", "emp", "SET NULL")], MAPPED)


def test_a_cascades_parent_tables_are_copied_before_their_children() -> None:
    assert copy_order(["d.grand", "d.other", "d.child", "d.emp", "d.parent"], GRAPH) == [
        "d.other", "d.emp", "d.parent", "d.child", "d.grand"]


def test_tables_without_cascades_keep_their_order() -> None:
    assert copy_order(["d.b", "d.a"], CascadeGraph([], ["d.a", "d.b"])) == ["d.b", "d.a"]


def test_only_tables_a_cascade_reaches_through_another_child_are_swept() -> None:
    assert swept_tables(GRAPH) == ["d.emp", "d.grand"]  # a self-reference reaches itself at depth two


SHAPE = TableShape("d", "grand", (("id", "int(11)"), ("pid", "int(11)"), ("note", "varchar(20)")), ("id",))
MAPPER = TableMapper(TableMapping(source="d.grand"), SHAPE.columns, SHAPE.pk)


def _sweep(items: list[dict[str, object]], mysql: list[dict[str, object]]) -> list[ChangeEvent]:
    return sweep_events(SHAPE, MAPPER, ["pid"], items, Chunk("b.000003", 4000, mysql, 0.0))  # type: ignore[arg-type]


def test_an_item_whose_row_is_gone_becomes_a_delete_at_the_reads_snapshot_version() -> None:
    gone = {"id": 1, "pid": 7, "note": "x"}
    [event] = _sweep([gone, {"id": 2, "pid": 7, "note": "y"}], [{"id": 2, "pid": 7, "note": "y"}])
    assert (event.op, event.pk, event.before) == ("d", {"id": 1}, gone)
    assert event.version == snapshot_version("b.000003", 4000)
    assert event.tx.id.startswith("snapshot:")  # out of band for the writer's cascade order


def test_a_row_whose_foreign_key_moved_is_sent_again_and_other_differences_are_left_alone() -> None:
    events = _sweep([{"id": 1, "pid": 7, "note": "x"}, {"id": 2, "pid": 7, "note": "y"}],
                    [{"id": 1, "pid": 8, "note": "x"}, {"id": 2, "pid": 7, "note": "changed"}])
    assert [(e.op, e.after) for e in events] == [("r", {"id": 1, "pid": 8, "note": "x"})]

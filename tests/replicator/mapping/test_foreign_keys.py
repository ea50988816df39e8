"""The foreign-key graph and what one parent change cascades (replicator.mapping.foreign_keys)."""

from __future__ import annotations

import pytest

from replicator.errors import SourceConfigError
from replicator.mapping.foreign_keys import (
    CascadeGraph,
    ForeignKey,
    action_for,
    cascaded_row,
    parse_foreign_keys,
)
from replicator.reader import checks

CREATE = """CREATE TABLE `items` (
  `order_id` int(11) NOT NULL,
  `line` int(11) NOT NULL,
  `sku` varchar(20) DEFAULT NULL,
  `wh` int(11) DEFAULT NULL,
  PRIMARY KEY (`order_id`,`line`),
  CONSTRAINT `fk_order` FOREIGN KEY (`order_id`) REFERENCES `orders` (`id`)
    ON DELETE CASCADE ON UPDATE CASCADE,
  CONSTRAINT `fk_sku` FOREIGN KEY (`sku`, `wh`) REFERENCES `other`.`stock` (`sku`, `wh`) ON DELETE SET NULL,
  CONSTRAINT `fk``odd` FOREIGN KEY (`wh`) REFERENCES `warehouses` (`id`)
) ENGINE=InnoDB"""


def _fk(child: str, parent: str, cols: tuple[str, ...] = ("pid",), pcols: tuple[str, ...] = ("id",),
        on_delete: str = "CASCADE", on_update: str = "RESTRICT", name: str = "fk") -> ForeignKey:
    return ForeignKey(name, child, cols, parent, pcols, on_delete, on_update)  # type: ignore[arg-type]


def test_show_create_table_gives_columns_parents_and_both_rules() -> None:
    fks = parse_foreign_keys("shop", "items", CREATE)
    assert fks[0] == ForeignKey("fk_order", "shop.items", ("order_id",), "shop.orders", ("id",),
                                "CASCADE", "CASCADE")
    assert fks[1] == ForeignKey("fk_sku", "shop.items", ("sku", "wh"), "other.stock", ("sku", "wh"),
                                "SET NULL", "RESTRICT")
    assert (fks[2].name, fks[2].on_delete, fks[2].cascading) == ("fk`odd", "RESTRICT", False)


def test_only_cascading_keys_of_mapped_children_are_in_the_graph() -> None:
    fks = parse_foreign_keys("shop", "items", CREATE)
    graph = CascadeGraph(fks, {"shop.items", "shop.orders"})
    assert [fk.name for fk in graph.edges] == ["fk_order", "fk_sku"]
    assert graph.children_of("shop.orders") == (fks[0],)


def test_a_cascade_from_an_unmapped_parent_is_unreproducible_and_names_the_table_to_map() -> None:
    graph = CascadeGraph(parse_foreign_keys("shop", "items", CREATE), {"shop.items", "shop.orders"})
    (why,) = graph.unreproducible()
    assert "constraint fk_sku -> other.stock" in why and "map other.stock in tables[]" in why


def test_the_reader_accepts_a_cascade_between_mapped_tables_and_refuses_one_from_an_unmapped_parent() -> None:
    fks = checks.foreign_keys_of("shop", "items", CREATE)
    checks.check_fk_cascades({"shop.items", "shop.orders", "other.stock"}, fks)
    with pytest.raises(SourceConfigError, match=r"items constraint fk_sku -> other\.stock.*map other\.stock"):
        checks.check_fk_cascades({"shop.items", "shop.orders"}, fks)


def test_set_default_and_wide_keys_are_refused() -> None:
    graph = CascadeGraph([_fk("d.c", "d.p", on_delete="SET DEFAULT"),
                          _fk("d.c", "d.p", ("a", "b", "c"), ("a", "b", "c"), name="wide")], {"d.c", "d.p"})
    assert [w.split(":")[1].strip()[:20] for w in graph.unreproducible()] == [
        "SET DEFAULT is not r", "a foreign key of 3 c"]


def test_chains_and_self_references_are_followed_to_every_descendant() -> None:
    graph = CascadeGraph([_fk("d.child", "d.parent"), _fk("d.grand", "d.child"),
                          _fk("d.emp", "d.emp", ("boss",), name="self")],
                         {"d.parent", "d.child", "d.grand", "d.emp"})
    assert graph.descendants("d.parent") == {"d.child", "d.grand"}
    assert graph.descendants("d.emp") == {"d.emp"}
    assert graph.family == {"d.parent", "d.child", "d.grand", "d.emp"}


def test_a_delete_cascades_by_the_on_delete_rule() -> None:
    fk = _fk("d.c", "d.p", on_delete="SET NULL")
    action = action_for(fk, {"id": 7, "x": 1}, None)
    assert action is not None and (action.kind, action.parent_values) == ("set_null", (7,))
    assert cascaded_row(action, {"id": 1, "pid": 7}) == {"id": 1, "pid": None}


def test_an_update_cascades_only_when_a_referenced_column_changes() -> None:
    fk = _fk("d.c", "d.p", on_update="CASCADE")
    assert action_for(fk, {"id": 7, "x": 1}, {"id": 7, "x": 2}) is None
    action = action_for(fk, {"id": 7}, {"id": 8})
    assert action is not None and (action.kind, action.new_values) == ("update", (8,))
    assert cascaded_row(action, {"id": 1, "pid": 7}) == {"id": 1, "pid": 8}


def test_restrict_and_a_null_referenced_value_cascade_nothing() -> None:
    assert action_for(_fk("d.c", "d.p", on_delete="RESTRICT"), {"id": 1}, None) is None
    assert action_for(_fk("d.c", "d.p"), {"id": None}, None) is None


def test_a_delete_with_cascade_deletes_the_child_row() -> None:
    action = action_for(_fk("d.c", "d.p"), {"id": 1}, None)
    assert action is not None and cascaded_row(action, {"id": 5, "pid": 1}) is None

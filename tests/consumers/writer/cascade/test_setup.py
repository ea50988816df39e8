"""The writer's start-up for cascades: the GSI per cascading foreign key, and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.writer.cascade.setup import check_graph, load_graph, records_spec, with_cascade_indexes
from consumers.writer.service import check_mappings
from consumers.writer.tables import TableSpec, ensure_tables
from replicator.errors import ConfigError
from replicator.mapping.foreign_keys import CascadeGraph, ForeignKey
from replicator.settings import load_settings

FK = ForeignKey("fk_child", "d.child", ("pid",), "d.parent", ("id",), "CASCADE")
SCHEMAS: dict[str, Any] = {"d.parent": ((("id", "int(11)"),), ("id",)),
                           "d.child": ((("id", "int(11)"), ("pid", "int(11)")), ("id",))}


def test_each_child_of_a_cascading_foreign_key_gets_a_gsi_on_its_columns() -> None:
    settings = load_settings(tables=[{"source": "d.parent"}, {"source": "d.child"}])
    graph = CascadeGraph([FK], {"d.parent", "d.child"})
    specs = {s.source: s for s in check_mappings(with_cascade_indexes(settings, graph), SCHEMAS)}
    assert [(g.name, g.schema) for g in specs["d.child"].indexes] == [
        ("cascade.fk_child", (("pid", "HASH", "N"),))]
    assert specs["d.parent"].indexes == ()


def test_a_cascade_from_an_unmapped_parent_stops_the_writer_naming_the_table_to_map() -> None:
    with pytest.raises(ConfigError, match=r"d\.child constraint fk_child -> d\.parent.*map d\.parent"):
        check_graph(CascadeGraph([FK], {"d.child"}))


def test_an_excluded_foreign_key_column_is_refused() -> None:
    settings = load_settings(tables=[{"source": "d.parent"}, {"source": "d.child", "exclude": ["pid"]}])
    with pytest.raises(ConfigError, match=r"exclude drops \['pid'\].*fk_child"):
        with_cascade_indexes(settings, CascadeGraph([FK], {"d.parent", "d.child"}))


@pytest.mark.integration
def test_without_create_tables_a_missing_cascade_gsi_stops_the_writer_naming_it(
        mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str], dynamodb: Any) -> None:
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE parent (id INT PRIMARY KEY)")
        cur.execute("CREATE TABLE child (id INT PRIMARY KEY, pid INT, CONSTRAINT fk_c FOREIGN KEY (pid) "
                    "REFERENCES parent (id) ON DELETE CASCADE)")
    settings = load_settings(tables=[{"source": f"{mysql_db}.parent"}, {"source": f"{mysql_db}.child"}])
    graph = load_graph(settings)
    assert [fk.name for fk in graph.edges] == ["fk_c"]
    schemas = {f"{mysql_db}.{t}": SCHEMAS[f"d.{t}"] for t in ("parent", "child")}
    bare = [TableSpec(s.name, s.source, s.key) for s in check_mappings(settings, schemas)]
    ensure_tables(dynamodb, bare, create=True, stream=False)  # the tables, without the cascade's GSI
    specs = check_mappings(with_cascade_indexes(settings, graph), schemas)
    with pytest.raises(ConfigError, match=r"no GSI 'cascade\.fk_c'.*--create-tables"):
        ensure_tables(dynamodb, specs, create=False, stream=False)
    with pytest.raises(ConfigError, match=r"replicator-cascades.*does not exist"):
        ensure_tables(dynamodb, [records_spec(settings)], create=False, stream=False)

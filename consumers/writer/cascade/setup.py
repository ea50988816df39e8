"""The writer's start-up for foreign-key cascades: the graph, the GSIs, the records table.

- :func:`load_graph` reads the mapped tables' foreign keys from MySQL (``SHOW CREATE TABLE``: the
  reader's SELECT grant is enough) and refuses, naming the constraint, what cannot be reproduced
  (a cascade from an unmapped parent, SET DEFAULT, a foreign key of more than two columns);
- :func:`with_cascade_indexes` gives every child table a GSI per cascading foreign key, keyed by
  the foreign-key attributes (``cascade.<constraint>``), declared like an access pattern so that
  ``replicator write --create-tables`` creates it and a start-up without it stops, naming it; its
  NULL foreign keys are left out of the item (DynamoDB refuses a NULL index key);
- :func:`records_spec` is the cascade-records table (``<prefix>replicator-cascades``).
"""

from __future__ import annotations

from consumers.writer.cascade.executor import RECORDS_TABLE
from consumers.writer.tables import TableSpec
from replicator.adapters.mysql import connect, mysql_errors
from replicator.errors import ConfigError
from replicator.mapping import KeyAttribute
from replicator.mapping.cells import quote_ident
from replicator.mapping.foreign_keys import CascadeGraph, ForeignKey, parse_foreign_keys
from replicator.settings import IndexSpec, Settings


def load_graph(settings: Settings) -> CascadeGraph:
    """The mapped tables' cascading foreign keys; a :class:`ConfigError` for what cannot be reproduced."""
    fks: list[ForeignKey] = []
    conn = connect(settings.mysql)
    try:
        with mysql_errors("reading the mapped tables' foreign keys", settings.mysql), conn.cursor() as cur:
            for t in settings.tables:
                cur.execute(f"SHOW CREATE TABLE {quote_ident(t.database)}.{quote_ident(t.table)}")
                row = cur.fetchone()
                if row:
                    fks += parse_foreign_keys(t.database, t.table, str(row[1]))
    finally:
        conn.close()
    graph = CascadeGraph(without_embedded(settings, fks), {t.source for t in settings.tables})
    check_graph(graph)
    return graph


def without_embedded(settings: Settings, fks: list[ForeignKey]) -> list[ForeignKey]:
    """The cascading foreign keys the cascade engine reproduces, after embedded tables (docs/model.md).

    ``ON DELETE CASCADE`` from a table embedded in its parent needs no reproduction: the parent's
    delete removes the entries older than itself. Any other cascade into or out of an embedded
    table is refused, naming the constraint.
    """
    embedded_in = {t.source: t.embed.parent for t in settings.tables if t.embed is not None}
    kept = []
    for fk in fks:
        if not fk.cascading or (fk.child not in embedded_in and fk.parent not in embedded_in):
            kept.append(fk)
            continue
        if (embedded_in.get(fk.child) == fk.parent and fk.on_delete == "CASCADE"
                and fk.on_update in ("RESTRICT", "NO ACTION")):
            continue
        raise ConfigError(
            f"{fk.child} constraint {fk.name} -> {fk.parent} ({fk.rules}): a cascade into or out of an "
            f"embedded table is reproduced only as ON DELETE CASCADE from the child to the parent it is "
            f"embedded in (the parent's delete removes its entries); make the other rules RESTRICT, or map "
            f"the embedded table as a table of its own")
    return kept


def check_graph(graph: CascadeGraph) -> None:
    bad = graph.unreproducible()
    if bad:
        raise ConfigError("foreign-key cascades the writer cannot reproduce: " + "; ".join(bad)
                          + ". Or replace those rules with RESTRICT and let the application change the "
                          "children, or remove the child table from the mapping.")


def with_cascade_indexes(settings: Settings, graph: CascadeGraph) -> Settings:
    """``settings`` with a ``cascade.<constraint>`` access pattern on each child of a cascading FK."""
    if not graph.edges:
        return settings
    tables = []
    for t in settings.tables:
        have = {ix.name for ix in t.indexes}
        extra = [IndexSpec(name=fk.index_name, pk=fk.columns[0],
                           sk=fk.columns[1] if len(fk.columns) > 1 else None)
                 for fk in graph.of_child(t.source) if fk.index_name not in have]
        for fk in graph.of_child(t.source):
            excluded = set(fk.columns) & set(t.exclude)
            if excluded:
                raise ConfigError(f"tables[source={t.source}].exclude drops {sorted(excluded)}, the "
                                  f"columns of cascading foreign key {fk.name} -> {fk.parent}; the writer "
                                  f"finds a parent's children by them: keep them in DynamoDB")
        tables.append(t.model_copy(update={"indexes": tuple(t.indexes) + tuple(extra)}) if extra else t)
    return settings.model_copy(update={"tables": tuple(tables)})


def records_table(settings: Settings) -> str:
    return settings.dynamodb.table_prefix + RECORDS_TABLE


def records_spec(settings: Settings) -> TableSpec:
    return TableSpec(records_table(settings), "(foreign-key cascade records)",
                     (KeyAttribute("id", "HASH", "S"), KeyAttribute("v", "RANGE", "N")))

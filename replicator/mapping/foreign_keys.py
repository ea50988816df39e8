"""Foreign keys of the mapped tables and what InnoDB cascades through them (DESIGN §4 invariant 8).

InnoDB (every MariaDB, MySQL <= 8.4) applies ``ON DELETE/UPDATE CASCADE`` and ``SET NULL`` below the
binlog: the binlog holds the parent's change, not the children's. The writer reproduces them
(docs/design.md, "Foreign-key cascades"); this module is the pure half:

- :func:`parse_foreign_keys` reads the constraints of one table from ``SHOW CREATE TABLE`` (MariaDB
  hides ``REFERENTIAL_CONSTRAINTS`` from a SELECT-only user);
- :class:`CascadeGraph` keeps the cascading ones between mapped tables, says which cannot be
  reproduced (a mapped child under an unmapped parent), and which children a parent change reaches;
- :func:`action_for` decides what one parent change does to one foreign key's children, and
  :func:`cascaded_row` what it makes of one child row.

No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

Rule = Literal["CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION"]
ActionKind = Literal["delete", "set_null", "update"]

#: InnoDB stops a cascade deeper than this (the statement fails: nothing reaches the binlog).
MAX_DEPTH = 15

_IDENT = r"`(?:[^`]|``)+`"
_FK = re.compile(
    rf"CONSTRAINT\s+(?P<name>{_IDENT})\s+FOREIGN\s+KEY\s*\((?P<cols>[^)]*)\)\s*REFERENCES\s+"
    rf"(?P<parent>(?:{_IDENT}\.)?{_IDENT})\s*\((?P<pcols>[^)]*)\)"
    r"(?P<rules>(?:\s+ON\s+(?:DELETE|UPDATE)\s+(?:CASCADE|SET\s+NULL|SET\s+DEFAULT|RESTRICT|NO\s+ACTION))*)",
    re.IGNORECASE,
)
_RULE = re.compile(r"ON\s+(DELETE|UPDATE)\s+(CASCADE|SET\s+NULL|SET\s+DEFAULT|RESTRICT|NO\s+ACTION)",
                   re.IGNORECASE)
_NAME = re.compile(_IDENT)


def _unquote(quoted: str) -> str:
    return quoted.strip()[1:-1].replace("``", "`")


def _columns(text: str) -> tuple[str, ...]:
    return tuple(_unquote(m.group(0)) for m in _NAME.finditer(text))


@dataclass(frozen=True, slots=True)
class ForeignKey:
    """One constraint: ``child (columns) REFERENCES parent (parent_columns)`` with its two rules."""

    name: str
    child: str  # database.table
    columns: tuple[str, ...]
    parent: str  # database.table
    parent_columns: tuple[str, ...]
    on_delete: Rule = "RESTRICT"
    on_update: Rule = "RESTRICT"

    @property
    def cascading(self) -> bool:
        """Whether InnoDB changes child rows through it (below the binlog)."""
        return any(r in ("CASCADE", "SET NULL", "SET DEFAULT") for r in (self.on_delete, self.on_update))

    @property
    def rules(self) -> str:
        return f"ON DELETE {self.on_delete} ON UPDATE {self.on_update}"

    @property
    def ident(self) -> str:
        """Unique across the migration: ``database.child.constraint``."""
        return f"{self.child}.{self.name}"

    @property
    def index_name(self) -> str:
        """The child table's GSI on the foreign-key attributes that finds a parent's children."""
        return "cascade." + re.sub(r"[^A-Za-z0-9_.-]", "_", self.name)[:240]


def parse_foreign_keys(db: str, table: str, create_sql: str) -> list[ForeignKey]:
    """The foreign keys in one table's ``SHOW CREATE TABLE`` text."""
    out = []
    for m in _FK.finditer(create_sql):
        parent_db, _, parent_table = m.group("parent").rpartition(".")
        rules: dict[str, Rule] = {}
        for r in _RULE.finditer(m.group("rules")):
            rules[r.group(1).upper()] = " ".join(r.group(2).upper().split())  # type: ignore[assignment]
        out.append(ForeignKey(
            name=_unquote(m.group("name")), child=f"{db}.{table}", columns=_columns(m.group("cols")),
            parent=f"{_unquote(parent_db) if parent_db else db}.{_unquote(parent_table)}",
            parent_columns=_columns(m.group("pcols")),
            on_delete=rules.get("DELETE", "RESTRICT"), on_update=rules.get("UPDATE", "RESTRICT")))
    return out


class CascadeGraph:
    """The cascading foreign keys whose child is a mapped table."""

    def __init__(self, foreign_keys: Iterable[ForeignKey], mapped: Iterable[str]) -> None:
        self.mapped = frozenset(mapped)
        self.edges = tuple(fk for fk in foreign_keys if fk.cascading and fk.child in self.mapped)

    def unreproducible(self) -> list[str]:
        """Why each cascading edge cannot be reproduced, as messages naming the constraint and the fix."""
        out = []
        for fk in self.edges:
            where = f"{fk.child} constraint {fk.name} -> {fk.parent} ({fk.rules})"
            if fk.parent not in self.mapped:
                out.append(f"{where}: the parent table is not mapped, so its changes never reach the "
                           f"writer; map {fk.parent} in tables[] too")
            elif "SET DEFAULT" in (fk.on_delete, fk.on_update):
                out.append(f"{where}: SET DEFAULT is not reproduced (InnoDB does not support it either)")
            elif len(fk.columns) > 2:
                out.append(f"{where}: a foreign key of {len(fk.columns)} columns cannot key a DynamoDB "
                           f"index (two at most)")
        return out

    def children_of(self, parent: str) -> tuple[ForeignKey, ...]:
        return tuple(fk for fk in self.edges if fk.parent == parent)

    def of_child(self, child: str) -> tuple[ForeignKey, ...]:
        return tuple(fk for fk in self.edges if fk.child == child)

    @property
    def parents(self) -> frozenset[str]:
        return frozenset(fk.parent for fk in self.edges)

    @property
    def family(self) -> frozenset[str]:
        """Every table a cascade starts from or reaches."""
        return frozenset(fk.parent for fk in self.edges) | frozenset(fk.child for fk in self.edges)

    def descendants(self, table: str) -> frozenset[str]:
        """The tables a change of ``table`` may cascade into, at any depth (itself if it is reached)."""
        seen: set[str] = set()
        todo = [table]
        while todo:
            for fk in self.children_of(todo.pop()):
                if fk.child not in seen:
                    seen.add(fk.child)
                    todo.append(fk.child)
        return frozenset(seen)


@dataclass(frozen=True, slots=True)
class CascadeAction:
    """What one parent change does to the children of one foreign key."""

    fk: ForeignKey
    kind: ActionKind
    parent_values: tuple[Any, ...]  # the children's foreign-key values (the parent's old ones)
    new_values: tuple[Any, ...] = ()  # kind "update": the parent's new values


def action_for(fk: ForeignKey, before: Mapping[str, Any] | None,
               after: Mapping[str, Any] | None) -> CascadeAction | None:
    """The action of a parent change (``after`` None: a delete) on ``fk``'s children; None: none.

    An update reaches the children only when it changes a referenced column. A parent row with a
    NULL referenced column has no children.
    """
    if before is None:
        return None
    old = tuple(before.get(c) for c in fk.parent_columns)
    if any(v is None for v in old):
        return None
    if after is None:
        rule = fk.on_delete
        new: tuple[Any, ...] = ()
    else:
        new = tuple(after.get(c) for c in fk.parent_columns)
        if new == old:
            return None
        rule = fk.on_update
    if rule == "CASCADE":
        return CascadeAction(fk, "delete" if after is None else "update", old, new)
    if rule == "SET NULL":
        return CascadeAction(fk, "set_null", old)
    return None


def cascaded_row(action: CascadeAction, row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The child row after the action (None: deleted)."""
    if action.kind == "delete":
        return None
    out = dict(row)
    values = action.new_values if action.kind == "update" else (None,) * len(action.fk.columns)
    for column, value in zip(action.fk.columns, values, strict=True):
        out[column] = value
    return out


def references(action: CascadeAction, row: Mapping[str, Any]) -> bool:
    """Whether ``row`` is one of the action's children (its foreign key holds the parent's values)."""
    return tuple(row.get(c) for c in action.fk.columns) == action.parent_values

"""Embedded children (docs/model.md): a child table's rows as entries of a map in the parent's item.

A mapping with ``embed: {parent, as, on}`` has no item of its own. Each child row is the entry
``item[as][<child primary key>]`` of the item its parent row maps to, the parent's key being
rendered from the child's ``on`` columns (so a child can find its item before its parent has
arrived, and creates an item *shell* for it: a tombstone without a version). Every entry carries
its own ``_version``, and every write to it is conditional on that version, so child events are
idempotent and never regress, whatever order the parent's and the children's topics are read in:

- a child upsert sets its entry (``_version`` v) if the entry is older, and if the parent's
  last delete (``_pdel``) is older than v: a child event from before the parent's delete cannot
  resurrect the child, even after the parent was inserted again;
- a child delete leaves a tombstone entry (``_version``, ``_deleted``, ``_ttl``), as item
  tombstones do; once expired it is removed by ``replicator compact`` (:func:`compact_entries`),
  and left out by any read-then-write of the item;
- a parent upsert is an UpdateItem of the parent's own attributes: the children stay;
- a parent delete reads the item and replaces it with a tombstone that keeps only the entries
  newer than the delete, conditional on the item's revision (``_rev``, bumped by every write)
  not having moved since the read.

Pure: the requests are built here; :mod:`consumers.writer.applier` sends them (and reads the
item where a write needs to know what is stored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from replicator.errors import ConfigError, MappingError, MissingKeyError
from replicator.events import Row
from replicator.mapping.mapper import Item, TableMapper, template_text
from replicator.mapping.names import (
    DELETED_ATTR,
    PARENT_DELETED_ATTR,
    REVISION_ATTR,
    TABLE_ATTR,
    TTL_ATTR,
    VERSION_ATTR,
)
from replicator.settings import EmbedSpec

#: Separator of a composite child key's parts in the entry's name.
ENTRY_KEY_SEPARATOR = "#"


class EmbeddedMapper:
    """A child table's mapping into its parent's items (see the module docstring)."""

    def __init__(self, child: TableMapper, parent: TableMapper) -> None:
        assert child.mapping.embed is not None
        self.child = child
        self.parent = parent
        self.spec: EmbedSpec = child.mapping.embed

    @property
    def table(self) -> str:
        return self.child.table

    @property
    def attribute(self) -> str:
        """The parent item's map attribute that holds the entries."""
        return self.spec.as_

    def validate(self) -> None:
        """The ``on`` columns exist and give the parent's whole key; the child has a primary key."""
        where = f"tables[source={self.table}].embed"
        child_cols = set(self.child.types)
        parent_cols = set(self.parent.types)
        unknown = sorted(set(self.spec.on) - child_cols)
        if unknown:
            raise ConfigError(f"{where}.on names column(s) {unknown} that {self.table} does not have; its "
                              f"columns are {sorted(child_cols)}")
        unknown = sorted(set(self.spec.on.values()) - parent_cols)
        if unknown:
            raise ConfigError(f"{where}.on names parent column(s) {unknown} that {self.parent.table} does "
                              f"not have; its columns are {sorted(parent_cols)}")
        missing = sorted(set(self.parent.key_columns) - set(self.spec.on.values()))
        if missing:
            raise ConfigError(
                f"{where}.on does not give the parent's key column(s) {missing} "
                f"({self.parent.table}'s item key is made of {list(self.parent.key_columns)}): a child "
                f"must know its parent's item before the parent arrives; add the child columns that "
                f"hold them to embed.on, or key the parent by the columns the child has")
        if not self.child.primary_key:
            raise ConfigError(f"{where}: {self.table} has no primary key; its entries are named by it")
        if self.attribute in self.parent.attributes.values():
            raise ConfigError(f"{where}.as {self.attribute!r} is also a column of {self.parent.table}; "
                              f"pick another name")

    # ----------------------------------------------------------------- row -> entry

    def parent_row(self, row: Row) -> Row:
        """The parent's key columns as the child row gives them."""
        return {parent_col: row.get(child_col) for child_col, parent_col in self.spec.on.items()}

    def item_key(self, row: Row) -> Item:
        """The key of the parent item a child row lives in."""
        try:
            return self.parent.key(self.parent_row(row))
        except MappingError as exc:
            raise MissingKeyError(f"{self.table} key ({self.child.key_text(row)}): its parent's item key "
                                  f"cannot be built from embed.on: {exc}", table=self.table,
                                  key=self.child.key_text(row), reason=exc.reason) from exc

    def entry_name(self, row: Row) -> str:
        """The entry's name in the map: the child's primary key, parts joined by ``#``."""
        parts = []
        for column in self.child.primary_key:
            text = template_text(row.get(column))
            if text is None:
                raise MissingKeyError(f"{self.table} key ({self.child.key_text(row)}): primary-key column "
                                      f"{column!r} is NULL or empty", table=self.table,
                                      key=self.child.key_text(row), reason="null-or-empty-key")
            parts.append(text)
        return ENTRY_KEY_SEPARATOR.join(parts)

    def entry(self, row: Row, version: int) -> Item:
        """The entry of a live child row: its attributes and ``_version``."""
        value = self.child.to_item(row)
        value.pop(TABLE_ATTR, None)
        value[VERSION_ATTR] = {"N": str(version)}
        return value

    @staticmethod
    def entry_tombstone(version: int, expires_at: int) -> Item:
        """A deleted child's entry: its version, kept until ``expires_at`` (epoch seconds, as an
        item tombstone's ``_ttl``), after which :func:`compact_entries` may remove it."""
        return {VERSION_ATTR: {"N": str(version)}, DELETED_ATTR: {"BOOL": True},
                TTL_ATTR: {"N": str(expires_at)}}

    def to_row(self, entry: dict[str, Any]) -> Row:
        return self.child.to_row(entry)


def live_entries(item: dict[str, Any], attribute: str) -> dict[str, dict[str, Any]]:
    """The live entries of one map attribute (tombstone entries left out), by entry name."""
    value = item.get(attribute, {}).get("M", {})
    return {name: av["M"] for name, av in value.items()
            if "M" in av and not av["M"].get(DELETED_ATTR, {}).get("BOOL")}


def entry_version(entry: dict[str, Any] | None) -> int | None:
    if entry is None or VERSION_ATTR not in entry:
        return None
    return int(entry[VERSION_ATTR]["N"])


def is_expired_tombstone(entry: dict[str, Any] | None, now: float) -> bool:
    """A tombstone entry whose ``_ttl`` has passed (one written without ``_ttl`` never expires:
    before entry tombstones carried one, they were kept for good)."""
    if not entry or not entry.get(DELETED_ATTR, {}).get("BOOL") or TTL_ATTR not in entry:
        return False
    return int(entry[TTL_ATTR]["N"]) < now


def expired_entries(item: dict[str, Any], attribute: str, now: float) -> dict[str, int]:
    """The expired tombstone entries of one map attribute: entry name -> its version."""
    out = {}
    for name, av in item.get(attribute, {}).get("M", {}).items():
        entry = av.get("M")
        if is_expired_tombstone(entry, now):
            out[name] = entry_version(entry) or 0
    return out


#: Entries removed by one compaction request at most (DynamoDB limits an expression to 4 KB).
MAX_COMPACTED_ENTRIES = 25


def compact_entries(table: str, key: Item, attribute: str, expired: dict[str, int]) -> dict[str, Any]:
    """Remove expired tombstone entries of one map, each only if it is still the tombstone read
    (same ``_version``, still deleted): a child written again since keeps its entry. Bumps the
    item's revision like every write, so a read-then-write of the item (a parent delete, the
    phase-5 client) reads it again rather than put the entries back."""
    names: dict[str, str] = {"#m": attribute, "#v": VERSION_ATTR, "#d": DELETED_ATTR, "#rev": REVISION_ATTR}
    values: dict[str, Any] = {":yes": {"BOOL": True}, ":one": {"N": "1"}}
    removes, conditions = [], []
    for i, (name, version) in enumerate(sorted(expired.items())):
        names[f"#e{i}"] = name
        values[f":v{i}"] = {"N": str(version)}
        removes.append(f"#m.#e{i}")
        conditions.append(f"(#m.#e{i}.#v = :v{i} AND #m.#e{i}.#d = :yes)")
    return {"TableName": table, "Key": key,
            "UpdateExpression": "REMOVE " + ", ".join(removes) + " ADD #rev :one",
            "ConditionExpression": " AND ".join(conditions), "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values}


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class EntryChange:
    """One child event's change to one entry: its value (or tombstone) at ``version``."""

    attribute: str
    name: str
    value: Item


def entry_update(table: str, key: Item, change: EntryChange, version: int) -> dict[str, Any]:
    """The fast path: set the entry when the map exists, the entry is older and the parent's
    last delete is older. A condition failure means one of those three; the applier reads the
    item to tell which (:func:`resolve_entry`)."""
    return {
        "TableName": table,
        "Key": key,
        "UpdateExpression": "SET #m.#e = :entry ADD #rev :one",
        "ConditionExpression": ("attribute_exists(#m) AND (attribute_not_exists(#m.#e.#v) OR #m.#e.#v < :v) "
                                "AND (attribute_not_exists(#pdel) OR #pdel < :v)"),
        "ExpressionAttributeNames": {"#m": change.attribute, "#e": change.name, "#v": VERSION_ATTR,
                                     "#pdel": PARENT_DELETED_ATTR, "#rev": REVISION_ATTR},
        "ExpressionAttributeValues": {":entry": {"M": change.value}, ":v": {"N": str(version)},
                                      ":one": {"N": "1"}},
    }


def entries_update(table: str, key: Item, changes: list[tuple[EntryChange, int]]) -> dict[str, Any]:
    """Several entries of one map of one item in one UpdateItem, under every one's condition (as
    :func:`entry_update`): when any fails, the caller sends them one by one to tell which."""
    attribute = changes[0][0].attribute
    names = {"#m": attribute, "#v": VERSION_ATTR, "#pdel": PARENT_DELETED_ATTR, "#rev": REVISION_ATTR}
    values: dict[str, Any] = {":one": {"N": "1"}, ":vmin": {"N": str(min(v for _, v in changes))}}
    sets, conditions = [], ["attribute_exists(#m)", "(attribute_not_exists(#pdel) OR #pdel < :vmin)"]
    for i, (change, version) in enumerate(changes):
        assert change.attribute == attribute
        names[f"#e{i}"] = change.name
        values[f":e{i}"] = {"M": change.value}
        values[f":v{i}"] = {"N": str(version)}
        sets.append(f"#m.#e{i} = :e{i}")
        conditions.append(f"(attribute_not_exists(#m.#e{i}.#v) OR #m.#e{i}.#v < :v{i})")
    return {"TableName": table, "Key": key, "UpdateExpression": "SET " + ", ".join(sets) + " ADD #rev :one",
            "ConditionExpression": " AND ".join(conditions), "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values}


def resolve_entry(stored: dict[str, Any] | None, table: str, key: Item, change: EntryChange, version: int,
                  parent_source: str) -> dict[str, Any] | str:
    """After the fast path's condition failed, given the item as stored now: ``"replayed"``
    when the entry or the parent's delete is at least as new, else the request to try next as
    ``{"op": "put" | "update", "params": ...}``: the put of a new item shell, or the update that
    creates the missing map, or the fast path again."""
    if stored is None:
        shell = dict(key)
        shell[TABLE_ATTR] = {"S": parent_source}
        shell[DELETED_ATTR] = {"BOOL": True}
        shell[change.attribute] = {"M": {change.name: {"M": change.value}}}
        shell[REVISION_ATTR] = {"N": "1"}
        first_key = next(iter(key))
        return {"op": "put", "params": {
            "TableName": table, "Item": shell, "ConditionExpression": "attribute_not_exists(#k)",
            "ExpressionAttributeNames": {"#k": first_key}}}
    pdel = stored.get(PARENT_DELETED_ATTR)
    if pdel is not None and int(pdel["N"]) >= version:
        return "replayed"
    entries = stored.get(change.attribute)
    if entries is None:
        return {"op": "update", "params": {
            "TableName": table, "Key": key,
            "UpdateExpression": "SET #m = :map ADD #rev :one",
            "ConditionExpression": "attribute_not_exists(#m) AND (attribute_not_exists(#pdel) OR #pdel < :v)",
            "ExpressionAttributeNames": {"#m": change.attribute, "#pdel": PARENT_DELETED_ATTR,
                                         "#rev": REVISION_ATTR},
            "ExpressionAttributeValues": {":map": {"M": {change.name: {"M": change.value}}},
                                          ":v": {"N": str(version)}, ":one": {"N": "1"}}}}
    current = entry_version(entries.get("M", {}).get(change.name, {}).get("M"))
    if current is not None and current >= version:
        return "replayed"
    return {"op": "update", "params": entry_update(table, key, change, version)}


def parent_update(table: str, key: Item, item: Item, version: int, mapper: TableMapper,
                  children: tuple[str, ...]) -> dict[str, Any]:
    """A parent upsert that keeps its children: SET its attributes, REMOVE the mapped ones it
    no longer has (and the tombstone marks), create empty child maps, bump the revision."""
    names: dict[str, str] = {"#v": VERSION_ATTR, "#rev": REVISION_ATTR}
    values: dict[str, Any] = {":v": {"N": str(version)}, ":one": {"N": "1"}, ":empty": {"M": {}}}
    sets: list[str] = []
    for i, (attr, av) in enumerate(a for a in item.items() if a[0] not in key):
        names[f"#a{i}"] = attr
        values[f":a{i}"] = av
        sets.append(f"#a{i} = :a{i}")
    for i, attr in enumerate(children):
        names[f"#c{i}"] = attr
        sets.append(f"#c{i} = if_not_exists(#c{i}, :empty)")
    removes = []
    gone = [a for a in (*mapper.attributes.values(), DELETED_ATTR, TTL_ATTR)
            if a not in item and a not in key]
    for i, attr in enumerate(gone):
        names[f"#r{i}"] = attr
        removes.append(f"#r{i}")
    expression = "SET " + ", ".join(sets)
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    expression += " ADD #rev :one"
    return {"TableName": table, "Key": key, "UpdateExpression": expression,
            "ConditionExpression": "attribute_not_exists(#v) OR #v < :v",
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}


def parent_delete(stored: dict[str, Any] | None, table: str, key: Item, tombstone: Item, version: int,
                  children: tuple[str, ...], now: float) -> dict[str, Any] | str:
    """A parent delete given the item as stored now (see the module docstring).

    ``"replayed"`` when a delete at least as new already took the children. Otherwise the put
    that removes every entry older than the delete and records it in ``_pdel``: the tombstone,
    or, when the parent's own attributes are newer (its re-insert was applied first), the
    stored item minus those entries (and minus the tombstone entries expired at ``now``);
    conditional on the revision read.
    """
    pdel = None if stored is None else stored.get(PARENT_DELETED_ATTR)
    if pdel is not None and int(pdel["N"]) >= version:
        return "replayed"
    stored_version = None if stored is None else stored.get(VERSION_ATTR)
    parent_newer = stored_version is not None and int(stored_version["N"]) >= version
    item = dict(stored) if parent_newer and stored is not None else dict(tombstone)
    item[PARENT_DELETED_ATTR] = {"N": str(version)}
    kept_any = False
    for attr in children:
        kept = {name: av for name, av in ((stored or {}).get(attr, {}).get("M", {})).items()
                if (entry_version(av.get("M")) or 0) > version and not is_expired_tombstone(av.get("M"), now)}
        kept_any = kept_any or bool(kept)
        item[attr] = {"M": kept}
    if kept_any:
        item.pop(TTL_ATTR, None)  # live children newer than the delete: the item must not expire
    revision = None if stored is None else stored.get(REVISION_ATTR)
    item[REVISION_ATTR] = {"N": str((int(revision["N"]) if revision else 0) + 1)}
    params: dict[str, Any] = {"TableName": table, "Item": item}
    if stored is None:
        params["ConditionExpression"] = "attribute_not_exists(#k)"
        params["ExpressionAttributeNames"] = {"#k": next(iter(key))}
    elif revision is None:
        params["ConditionExpression"] = "attribute_exists(#k) AND attribute_not_exists(#rev)"
        params["ExpressionAttributeNames"] = {"#k": next(iter(key)), "#rev": REVISION_ATTR}
    else:
        params["ConditionExpression"] = "#rev = :rev"
        params["ExpressionAttributeNames"] = {"#rev": REVISION_ATTR}
        params["ExpressionAttributeValues"] = {":rev": revision}
    return params

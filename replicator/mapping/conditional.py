"""The version-conditional writes of DESIGN §3.3, as pure request builders.

Every pipeline write (stream event or backfill row) is a whole-item put conditional on the
stored ``_version`` being lower (or absent), so replays, retries and snapshot/stream
interleaving can never move an item backwards. A delete is a put of a tombstone (key,
``_version``, ``_deleted``, ``_ttl``) under the same condition, so an older insert cannot
resurrect the row. A failed condition means "already applied": a replay, not an error.

:func:`writes_for_event` turns one change event into the :class:`ConditionalWrite` s it
needs; the DynamoDB adapter (``consumers.dynamo``) sends them as ``PutItem`` or as
``TransactWriteItems`` elements. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from replicator.errors import MappingError
from replicator.events import ChangeEvent, Row
from replicator.mapping.embedded import (
    EmbeddedMapper,
    EntryChange,
    entries_update,
    entry_update,
    parent_update,
)
from replicator.mapping.mapper import Item, TableMapper
from replicator.mapping.names import (
    DELETED_ATTR,
    ORIGIN_ATTR,
    ORIGIN_CDC,
    ORIGIN_SNAPSHOT,
    TABLE_ATTR,
    TTL_ATTR,
    VERSION_ATTR,
)

#: How a write reaches DynamoDB: a whole-item put; an UpdateItem of a parent's own attributes
#: (it has embedded children to keep); a parent delete (read, then a put conditional on the
#: revision read); an UpdateItem of one embedded child's entry (read and retried when its
#: condition fails for a reason other than a replay). See :mod:`replicator.mapping.embedded`.
WriteOp = Literal["put", "parent_update", "parent_delete", "entry", "entries"]

CONDITION = "attribute_not_exists(#v) OR #v < :v"


@dataclass(frozen=True, slots=True)
class ConditionalWrite:
    """One version-conditional put of a whole item (an upsert or a tombstone)."""

    table: str  # the DynamoDB table name, prefix included
    key: Item
    item: Item  # the whole item (put, parent_delete's tombstone), or the parent's attributes, or the entry
    version: int
    tombstone: bool
    op: WriteOp = "put"
    entry: EntryChange | None = None  # op "entry": which entry of which map
    children: tuple[str, ...] = ()  # parent ops: the map attributes of the embedded children
    parent_source: str = ""  # op "entry": the parent table (recorded on an item shell)
    update: dict[str, Any] | None = None  # parent_update / entry(ies): the UpdateItem parameters
    parts: tuple[ConditionalWrite, ...] = ()  # op "entries": the entry writes it combines

    @property
    def item_identity(self) -> tuple[str, tuple[tuple[str, str, Any], ...]]:
        """(table, key) in hashable form: one DynamoDB item (a transaction may touch it once)."""
        return self.table, tuple(sorted((name, *next(iter(av.items()))) for name, av in self.key.items()))

    @property
    def identity(self) -> tuple[Any, ...]:
        """The unit of coalescing and of per-item ordering: the item, or one entry of it. A
        parent delete is a unit of its own: a later upsert of the parent must not coalesce it
        away, since the delete also removes the children older than itself."""
        if self.op == "parent_delete":
            return (*self.item_identity, "parent_delete")
        if self.op == "entries":
            return (*self.item_identity, "entries", tuple(p.identity for p in self.parts))
        if self.entry is None:
            return self.item_identity
        return (*self.item_identity, self.entry.attribute, self.entry.name)

    @property
    def transactable(self) -> bool:
        """A parent delete reads the item first, so it is sent on its own."""
        return self.op != "parent_delete"

    def request(self) -> tuple[str, dict[str, Any]]:
        """``(client method, its keyword arguments)`` of the single-item request."""
        if self.update is not None:
            return "update_item", self.update
        return "put_item", self._put()

    def _put(self) -> dict[str, Any]:
        return {
            "TableName": self.table,
            "Item": self.item,
            "ConditionExpression": CONDITION,
            "ExpressionAttributeNames": {"#v": VERSION_ATTR},
            "ExpressionAttributeValues": {":v": {"N": str(self.version)}},
        }

    def put_item_params(self) -> dict[str, Any]:
        """Keyword arguments of ``client.put_item``."""
        return self._put()

    def transact_item(self) -> dict[str, Any]:
        """One element of ``client.transact_write_items(TransactItems=[...])``."""
        if self.update is not None:
            return {"Update": self.update}
        return {"Put": self._put()}


def metadata(version: int, origin: str, source: str | None = None) -> Item:
    meta: Item = {VERSION_ATTR: {"N": str(version)}, ORIGIN_ATTR: {"S": origin}}
    if source is not None:
        meta[TABLE_ATTR] = {"S": source}
    return meta


def upsert(mapper: TableMapper, table: str, row: Row, version: int, origin: str) -> ConditionalWrite:
    key = mapper.key(row)
    item = mapper.to_item(row, metadata=metadata(version, origin))  # to_item names the table
    children = mapper.mapping.children_as
    if children:
        return ConditionalWrite(table, key, item, version, tombstone=False, op="parent_update",
                                children=children,
                                update=parent_update(table, key, item, version, mapper, children))
    return ConditionalWrite(table, key, item, version, tombstone=False)


def tombstone(mapper: TableMapper, table: str, row: Row, version: int, origin: str,
              expires_at: int) -> ConditionalWrite:
    """A delete: the key and metadata only, kept until ``expires_at`` (epoch seconds)."""
    key = mapper.key(row)
    item = dict(key)
    item.update(metadata(version, origin, mapper.table))
    item[DELETED_ATTR] = {"BOOL": True}
    item[TTL_ATTR] = {"N": str(int(expires_at))}
    children = mapper.mapping.children_as
    if children:  # the parent's delete takes its children with it (those older than the delete)
        return ConditionalWrite(table, key, item, version, tombstone=True, op="parent_delete",
                                children=children)
    return ConditionalWrite(table, key, item, version, tombstone=True)


def entry_write(embedded: EmbeddedMapper, table: str, row: Row, version: int, *,
                deleted: bool, expires_at: int | None = None) -> ConditionalWrite:
    """One embedded child's upsert (or tombstone entry, kept until ``expires_at``) in its parent's item."""
    key = embedded.item_key(row)
    if deleted:
        assert expires_at is not None, "a tombstone entry needs its expiry"
        value = embedded.entry_tombstone(version, expires_at)
    else:
        value = embedded.entry(row, version)
    change = EntryChange(embedded.attribute, embedded.entry_name(row), value)
    return ConditionalWrite(table, key, value, version, tombstone=deleted, op="entry", entry=change,
                            parent_source=embedded.parent.table,
                            update=entry_update(table, key, change, version))


def writes_for_event(mapper: TableMapper | EmbeddedMapper, table: str, event: ChangeEvent, now: float,
                     tombstone_ttl_s: int) -> list[ConditionalWrite]:
    """The writes one event needs, in order.

    Usually one. An update whose key template reads a non-primary-key column that changed
    moves the item: a tombstone of the old key and a put of the new one, at the same version
    (an embedded child moves its entry the same way, between entries or parent items).
    """
    expires = int(now) + tombstone_ttl_s
    if isinstance(mapper, EmbeddedMapper):
        return _entry_writes(mapper, table, event, expires)
    origin = ORIGIN_SNAPSHOT if event.op == "r" else ORIGIN_CDC
    if event.op == "d":
        return [tombstone(mapper, table, event.row, event.version, origin, expires)]
    put = upsert(mapper, table, event.row, event.version, origin)
    if event.op == "u" and event.before is not None:
        try:
            old_key = mapper.key(event.before)
        except MappingError:  # the old image had no usable key (e.g. a NULL templated column)
            return [put]
        if old_key != put.key:
            return [tombstone(mapper, table, event.before, event.version, origin, expires), put]
    return [put]


#: Entries of one item combined into one UpdateItem at most (DynamoDB limits an expression to 4 KB).
MAX_COMBINED_ENTRIES = 25


def combine_entries(writes: list[ConditionalWrite]) -> list[ConditionalWrite]:
    """Entry writes of one map of one item as one ``entries`` write (up to
    :data:`MAX_COMBINED_ENTRIES`): a parent's children cost one request instead of one each."""
    groups: dict[Any, list[ConditionalWrite]] = {}
    out: list[ConditionalWrite] = []
    for w in writes:
        if w.op != "entry" or w.entry is None:
            out.append(w)
            continue
        groups.setdefault((w.item_identity, w.entry.attribute), []).append(w)
    for group in groups.values():
        for start in range(0, len(group), MAX_COMBINED_ENTRIES):
            part = group[start:start + MAX_COMBINED_ENTRIES]
            if len(part) == 1:
                out.append(part[0])
                continue
            first = part[0]
            changes = [(w.entry, w.version) for w in part if w.entry is not None]
            out.append(ConditionalWrite(first.table, first.key, {}, max(w.version for w in part), False,
                                        op="entries", parent_source=first.parent_source, parts=tuple(part),
                                        update=entries_update(first.table, first.key, changes)))
    return out


def _entry_writes(embedded: EmbeddedMapper, table: str, event: ChangeEvent,
                  expires: int) -> list[ConditionalWrite]:
    if event.op == "d":
        return [entry_write(embedded, table, event.row, event.version, deleted=True, expires_at=expires)]
    put = entry_write(embedded, table, event.row, event.version, deleted=False)
    if event.op == "u" and event.before is not None:
        try:
            old = entry_write(embedded, table, event.before, event.version, deleted=True, expires_at=expires)
        except MappingError:
            return [put]
        if old.identity != put.identity:
            return [old, put]
    return [put]


def is_tombstone(item: dict[str, Any]) -> bool:
    """Readers (validator, shim) treat a tombstone as an absent row."""
    flag = item.get(DELETED_ATTR)
    return bool(flag and flag.get("BOOL"))


def owned_by(item: dict[str, Any], source: str) -> bool:
    """Is the item ``source``'s? On a shared table ``_table`` tells; an item without it (written
    before items recorded their table) counts as the reader's own."""
    return bool(item.get(TABLE_ATTR, {}).get("S", source) == source)

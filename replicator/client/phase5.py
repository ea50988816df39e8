"""Phase-5 writes: an application transaction as one optimistic DynamoDB write.

Each item a transaction touches is read once (strongly consistent) into a working set; inserts,
updates and deletes then act on that set, so several operations on one row inside one
transaction behave as they would in MySQL (an insert after a delete, an update after an
insert). At commit every changed item becomes one conditional put — of the new item, or of a
tombstone — conditional on what was read (or on there being no item at all), all in one
``TransactWriteItems`` (one ``PutItem`` for a single item). A concurrent writer makes the
condition fail: :class:`WriteConflictError`, nothing written, and single-row operations run
again from their read. Versions come from :func:`~replicator.client.dynamo_side.app_version`,
above every binlog version, so no late CDC event can overwrite them.

A row whose DynamoDB key is not its primary key alone (``USER#{user_id}`` / ``ORDER#{id}``)
moves when a key column changes: a tombstone at the old item, the row at the new one. Both
halves carry one version (the higher of the two items' next versions), so that reverse
replication, which sees the two items' stream records in no particular order, can order them
as the writer does the binlog's: at one version a delete comes before an upsert
(docs/model.md, "Phase 5").

Embedded children (docs/model.md): a child row is an entry of its parent's item, so the item
is the unit. Its parent row and its entries are read with it; a write of the parent or of any
child puts the whole item back, conditional on the revision read (``_rev``, which every write
of the item bumps, the writer's included). Each changed entry gets its own ``_version`` and
``_origin = app`` (reverse replication applies an entry only when the application wrote it); a
parent delete takes its children with it, as ``ON DELETE CASCADE`` would, and records the delete
in ``_pdel``; a child whose ``embed.on`` columns change moves to its new parent's item (both
halves at one version, as above). A parent's key columns cannot change while it has children.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from replicator.client.dynamo_side import (
    MAX_TRANSACT_ITEMS,
    DynamoSide,
    Put,
    app_put,
    app_tombstone,
    app_version,
    item_version,
)
from replicator.errors import (
    DuplicateKeyError,
    FencedError,
    KeyShapeError,
    TransactionCancelled,
    TransactionTooLargeError,
)
from replicator.events import Row
from replicator.mapping import (
    DELETED_ATTR,
    ORIGIN_APP,
    ORIGIN_ATTR,
    TTL_ATTR,
    Item,
    TableMapper,
    is_tombstone,
)
from replicator.mapping.conditional import metadata
from replicator.mapping.embedded import entry_version, is_expired_tombstone
from replicator.mapping.names import PARENT_DELETED_ATTR, REVISION_ATTR, TABLE_ATTR, VERSION_ATTR

if TYPE_CHECKING:
    from replicator.client.table import Table

ItemId = tuple[str, tuple[tuple[str, str, str], ...]]
RowId = tuple[str, tuple[Any, ...]]


def _row_identity(mapper: TableMapper, row: Row | None) -> RowId:
    return mapper.table, tuple(row.get(c) for c in mapper.primary_key) if row is not None else ()


@dataclass
class EntrySlot:
    """One embedded child row of an item in the working set."""

    table: Table  # the child table
    attribute: str
    name: str
    stored: int | None  # the entry's version when read (live or tombstone); None: no entry
    was_live: bool
    original: Row | None
    row: Row | None

    @property
    def changed(self) -> bool:
        return self.row != self.original

    @property
    def row_identity(self) -> RowId:
        return _row_identity(self.table.mapper, self.row if self.row is not None else self.original)


@dataclass
class Slot:
    table: Table
    key: Item
    stored: int | None  # the version in DynamoDB when read (live or tombstone); None: no item
    was_live: bool
    original: Row | None
    row: Row | None
    item: dict[str, Any] | None = None  # the item as read
    entries: dict[tuple[str, str], EntrySlot] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.row != self.original or any(e.changed for e in self.entries.values())

    @property
    def row_identity(self) -> RowId:
        """The MySQL row this slot writes (its table and primary key), whichever item holds it."""
        return _row_identity(self.table.mapper, self.row if self.row is not None else self.original)

    @property
    def whole_item(self) -> bool:
        """Written as a whole item under its revision: it has (or may have) embedded children."""
        return bool(self.table.children)


def _identity(table: str, key: Item) -> ItemId:
    parts = []
    for name, av in sorted(key.items()):
        ((tag, payload),) = av.items()
        parts.append((name, tag, payload.hex() if isinstance(payload, bytes | bytearray) else str(payload)))
    return table, tuple(parts)


def _newest(item: dict[str, Any] | None, attributes: list[str]) -> int | None:
    """The highest version anywhere in an item: its own, its last parent delete, its entries'."""
    if item is None:
        return None
    found = [item_version(item) or 0, int(item.get(PARENT_DELETED_ATTR, {}).get("N", 0))]
    for attribute in attributes:
        found += [entry_version(av.get("M")) or 0 for av in item.get(attribute, {}).get("M", {}).values()]
    return max(found)


class Phase5Batch:
    """The working set of one phase-5 transaction."""

    def __init__(self, dynamo: DynamoSide, tombstone_ttl_s: int, generation: int,
                 fence_check: dict[str, Any] | None = None) -> None:
        self._dynamo = dynamo
        self._ttl_s = tombstone_ttl_s
        self._generation = generation
        self._fence_check = fence_check
        self._capacity = MAX_TRANSACT_ITEMS - (1 if fence_check is not None else 0)
        self._slots: dict[ItemId, Slot] = {}

    def _slot(self, table: Table, key: Item) -> Slot:
        ident = _identity(table.target, key)
        slot = self._slots.get(ident)
        if slot is None:
            if len(self._slots) >= self._capacity:
                raise TransactionTooLargeError(
                    "a phase-5 transaction is one DynamoDB TransactWriteItems of at most "
                    f"{MAX_TRANSACT_ITEMS} items, one of them the fence check: at most {self._capacity} rows "
                    "(a key-changing update counts two); this one touches more: split it")
            item = self._dynamo.get(table.target, key)
            live = item is not None and not is_tombstone(item)
            row = table.mapper.to_row(item) if live and item is not None else None
            slot = Slot(table, key, item_version(item), live, row, row, item)
            self._slots[ident] = slot
        return slot

    # ----------------------------------------------------------------- rows of their own items

    def current(self, table: Table, key: Item) -> Row | None:
        return self._slot(table, key).row

    def insert(self, table: Table, row: Row) -> None:
        slot = self._slot(table, table.mapper.key(row))
        if slot.row is not None:
            raise DuplicateKeyError(f"{table.source}: duplicate entry for key "
                                    f"({table.mapper.key_text(row)}): a row with this primary key exists",
                                    code=1062)
        slot.row = row

    def update(self, table: Table, key: Item, changes: Row) -> int:
        slot = self._slot(table, key)
        if slot.row is None:
            return 0
        new = {**slot.row, **changes}
        if new == slot.row:
            return 0
        new_key = table.mapper.key(new)
        if new_key != key:
            if self._has_children(slot):
                raise KeyShapeError(
                    f"{table.source} ({table.mapper.key_text(slot.row)}): this update changes the "
                    f"columns of its DynamoDB key, and the row has embedded children "
                    f"({sorted(table.children)}) that name it: in phase 5 move or delete them first")
            self.insert(table, new)
            slot.row = None
        else:
            slot.row = new
        return 1

    def delete(self, table: Table, key: Item) -> int:
        slot = self._slot(table, key)
        if slot.row is None:
            return 0
        slot.row = None
        for attribute, child in table.children.items():  # ON DELETE CASCADE: the children go too
            for name in self._entry_names(slot, attribute):
                self._entry_slot(slot, child, attribute, name).row = None
        return 1

    # ----------------------------------------------------------------- embedded rows

    def _parent_slot(self, child: Table, values: Row) -> tuple[Slot, str]:
        assert child.embedded is not None and child.parent is not None
        return self._slot(child.parent, child.embedded.item_key(values)), child.embedded.entry_name(values)

    def _entry_slot(self, slot: Slot, child: Table, attribute: str, name: str) -> EntrySlot:
        found = slot.entries.get((attribute, name))
        if found is None:
            assert child.embedded is not None
            stored = (slot.item or {}).get(attribute, {}).get("M", {}).get(name, {}).get("M")
            live = stored is not None and not stored.get(DELETED_ATTR, {}).get("BOOL")
            row = child.embedded.to_row(stored) if live and stored is not None else None
            found = EntrySlot(child, attribute, name, entry_version(stored), live, row, row)
            slot.entries[(attribute, name)] = found
        return found

    def _entry_names(self, slot: Slot, attribute: str) -> list[str]:
        stored = list((slot.item or {}).get(attribute, {}).get("M", {}))
        return stored + [n for (a, n) in slot.entries if a == attribute and n not in stored]

    def _has_children(self, slot: Slot) -> bool:
        return any(self._entry_slot(slot, child, attribute, name).row is not None
                   for attribute, child in slot.table.children.items()
                   for name in self._entry_names(slot, attribute))

    def entry_current(self, child: Table, values: Row) -> Row | None:
        assert child.embedded is not None
        slot, name = self._parent_slot(child, values)
        return self._entry_slot(slot, child, child.embedded.attribute, name).row

    def entry_insert(self, child: Table, row: Row) -> None:
        assert child.embedded is not None
        slot, name = self._parent_slot(child, row)
        entry = self._entry_slot(slot, child, child.embedded.attribute, name)
        if entry.row is not None:
            raise DuplicateKeyError(f"{child.source}: duplicate entry for key "
                                    f"({child.mapper.key_text(row)}): a row with this primary key exists",
                                    code=1062)
        entry.row = row

    def entry_update(self, child: Table, values: Row, changes: Row) -> int:
        assert child.embedded is not None
        slot, name = self._parent_slot(child, values)
        entry = self._entry_slot(slot, child, child.embedded.attribute, name)
        if entry.row is None:
            return 0
        new = {**entry.row, **changes}
        if new == entry.row:
            return 0
        if (child.embedded.item_key(new) != slot.key or child.embedded.entry_name(new) != name):
            self.entry_insert(child, new)  # to its new parent's item (or its new name)
            entry.row = None
        else:
            entry.row = new
        return 1

    def entry_delete(self, child: Table, values: Row) -> int:
        assert child.embedded is not None
        slot, name = self._parent_slot(child, values)
        entry = self._entry_slot(slot, child, child.embedded.attribute, name)
        if entry.row is None:
            return 0
        entry.row = None
        return 1

    # ----------------------------------------------------------------- commit

    def _versions(self, changed: list[Slot]) -> tuple[dict[int, int], dict[tuple[int, str, str], int]]:
        """The version of each changed parent row and entry; the slots of one row (a move's two
        halves) share the highest."""
        base: dict[int, int] = {}
        for i, slot in enumerate(changed):
            newest = _newest(slot.item, list(slot.table.children)) if slot.whole_item else slot.stored
            base[i] = app_version(newest, self._generation)
        rows: dict[RowId, int] = {}
        for i, slot in enumerate(changed):
            if slot.row != slot.original:
                rows[slot.row_identity] = max(rows.get(slot.row_identity, 0), base[i])
            for e in slot.entries.values():
                if e.changed:
                    rows[e.row_identity] = max(rows.get(e.row_identity, 0), base[i])
        parents = {i: rows.get(slot.row_identity, base[i]) for i, slot in enumerate(changed)}
        entries = {(i, e.attribute, e.name): rows[e.row_identity]
                   for i, slot in enumerate(changed) for e in slot.entries.values() if e.changed}
        return parents, entries

    def puts(self) -> list[Put]:
        out: list[Put] = []
        changed = [slot for slot in self._slots.values() if slot.changed]
        parents, entries = self._versions(changed)
        for i, slot in enumerate(changed):
            version = parents[i]
            mapper: TableMapper = slot.table.mapper
            if slot.whole_item:
                out.append(self._whole_item(slot, version,
                                            {(a, n): v for (j, a, n), v in entries.items() if j == i}))
            elif slot.row is not None:
                op = "update" if slot.was_live else "insert"
                out.append(app_put(mapper, slot.table.target, slot.row, version, slot.stored, op))
            elif slot.was_live and slot.original is not None:
                assert slot.stored is not None
                out.append(app_tombstone(mapper, slot.table.target, slot.original, version, slot.stored,
                                         self._ttl_s))
        return out

    def _whole_item(self, slot: Slot, version: int, entry_versions: dict[tuple[str, str], int]) -> Put:
        """The item of a parent with embedded children, as the working set leaves it."""
        stored = slot.item or {}
        mapper = slot.table.mapper
        parent_deleted = slot.was_live and slot.row is None
        if slot.row is not None and slot.row != slot.original:
            item: Item = mapper.to_item(slot.row, metadata=metadata(version, ORIGIN_APP))
            op = "update" if slot.was_live else "insert"
        elif slot.row is not None:  # the parent row as it was: its attributes and metadata kept
            item = {a: av for a, av in stored.items() if a not in slot.table.children}
            op = "update"
        else:  # a tombstone, or a shell that holds children without their parent
            item = dict(slot.key)
            if parent_deleted:
                item.update(metadata(version, ORIGIN_APP, mapper.table))
            else:
                item.update({a: stored[a] for a in (VERSION_ATTR, ORIGIN_ATTR) if a in stored})
            item[TABLE_ATTR] = {"S": mapper.table}
            item[DELETED_ATTR] = {"BOOL": True}
            op = "delete" if parent_deleted else "update"
        pdel = PARENT_DELETED_ATTR in stored and stored[PARENT_DELETED_ATTR]
        if parent_deleted:
            pdel = {"N": str(version)}
        if pdel:
            item[PARENT_DELETED_ATTR] = pdel
        live_children = False
        for attribute, child in slot.table.children.items():
            assert child.embedded is not None
            kept: dict[str, Any] = {}
            now = time.time()
            for name, av in stored.get(attribute, {}).get("M", {}).items():
                e = slot.entries.get((attribute, name))
                if e is not None and e.changed:
                    continue  # written below
                if parent_deleted and (entry_version(av.get("M")) or 0) <= version:
                    continue  # taken by the parent's delete
                if is_expired_tombstone(av.get("M"), now):
                    continue  # kept as long as item tombstones are (dynamodb.tombstone_ttl_s)
                kept[name] = av
                live_children |= not av.get("M", {}).get(DELETED_ATTR, {}).get("BOOL", False)
            for (a, name), e in slot.entries.items():
                if a != attribute or not e.changed:
                    continue
                v = entry_versions[(a, name)]
                if e.row is not None:
                    value = child.embedded.entry(e.row, v)
                    live_children = True
                elif parent_deleted:
                    continue  # taken by the parent's delete (_pdel): no tombstone entry needed
                else:
                    value = child.embedded.entry_tombstone(v, int(now) + self._ttl_s)
                value[ORIGIN_ATTR] = {"S": ORIGIN_APP}
                kept[name] = {"M": value}
            item[attribute] = {"M": kept}
        if slot.row is None and not live_children:
            item[TTL_ATTR] = {"N": str(int(time.time()) + self._ttl_s)}
        else:
            item.pop(TTL_ATTR, None)
        revision = stored.get(REVISION_ATTR)
        item[REVISION_ATTR] = {"N": str((int(revision["N"]) if revision else 0) + 1)}
        first = next(iter(slot.key))
        if not stored:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(#k)",
                                         "ExpressionAttributeNames": {"#k": first}}
        elif revision is not None:
            condition = {"ConditionExpression": "#rev = :rev",
                         "ExpressionAttributeNames": {"#rev": REVISION_ATTR},
                         "ExpressionAttributeValues": {":rev": revision}}
        elif VERSION_ATTR in stored:
            condition = {"ConditionExpression": "attribute_not_exists(#rev) AND #v = :old",
                         "ExpressionAttributeNames": {"#rev": REVISION_ATTR, "#v": VERSION_ATTR},
                         "ExpressionAttributeValues": {":old": stored[VERSION_ATTR]}}
        else:
            condition = {"ConditionExpression": "attribute_exists(#k) AND attribute_not_exists(#rev)",
                         "ExpressionAttributeNames": {"#k": first, "#rev": REVISION_ATTR}}
        return Put(slot.table.target, item, version, slot.stored, op, condition)

    def commit(self) -> int:
        """Write every changed item at once; the number of items written."""
        puts = self.puts()
        if not puts:
            return 0
        if self._fence_check is None and len(puts) == 1:
            self._dynamo.put(puts[0])
            return 1
        checks = [self._fence_check] if self._fence_check is not None else []
        try:
            self._dynamo.transact(puts, checks)
        except TransactionCancelled as exc:
            if checks and exc.reasons and exc.reasons[0] == "ConditionalCheckFailed":
                raise FencedError("DynamoDB is fenced: the writes have moved back to MySQL (or to a "
                                  "newer generation) and this client's phase was stale; nothing was "
                                  "written") from exc
            raise
        return len(puts)

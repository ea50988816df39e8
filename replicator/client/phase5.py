"""Phase-5 writes: an application transaction as one optimistic DynamoDB write.

Each row a transaction touches is read once (strongly consistent) into a working set; inserts,
updates and deletes then act on that set, so several operations on one row inside one
transaction behave as they would in MySQL (an insert after a delete, an update after an
insert). At commit every changed row becomes one conditional put — of the new item, or of a
tombstone — conditional on the version read (or on there being no item at all), all in one
``TransactWriteItems`` (one ``PutItem`` for a single row). A concurrent writer makes the
condition fail: :class:`WriteConflictError`, nothing written, and single-row operations run
again from their read. Versions come from :func:`~replicator.client.dynamo_side.app_version`,
above every binlog version, so no late CDC event can overwrite them.

A row whose DynamoDB key is not its primary key alone (``USER#{user_id}`` / ``ORDER#{id}``)
moves when a key column changes: a tombstone at the old item, the row at the new one. Both
halves carry one version (the higher of the two items' next versions), so that reverse
replication, which sees the two items' stream records in no particular order, can order them
as the writer does the binlog's: at one version a delete comes before an upsert
(docs/model.md, "Phase 5").
"""

from __future__ import annotations

from dataclasses import dataclass
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
from replicator.errors import DuplicateKeyError, FencedError, TransactionCancelled, TransactionTooLargeError
from replicator.events import Row
from replicator.mapping import Item, TableMapper, is_tombstone

if TYPE_CHECKING:
    from replicator.client.table import Table


@dataclass
class Slot:
    table: Table
    key: Item
    stored: int | None  # the version in DynamoDB when read (live or tombstone); None: no item
    was_live: bool
    original: Row | None
    row: Row | None

    @property
    def changed(self) -> bool:
        return self.row != self.original

    @property
    def row_identity(self) -> tuple[str, tuple[Any, ...]]:
        """The MySQL row this slot writes (its table and primary key), whichever item holds it."""
        row = self.row if self.row is not None else self.original
        mapper = self.table.mapper
        return mapper.table, tuple(row.get(c) for c in mapper.primary_key) if row is not None else ()


def _identity(table: str, key: Item) -> tuple[str, tuple[tuple[str, str, str], ...]]:
    parts = []
    for name, av in sorted(key.items()):
        ((tag, payload),) = av.items()
        parts.append((name, tag, payload.hex() if isinstance(payload, bytes | bytearray) else str(payload)))
    return table, tuple(parts)


class Phase5Batch:
    """The working set of one phase-5 transaction."""

    def __init__(self, dynamo: DynamoSide, tombstone_ttl_s: int, generation: int,
                 fence_check: dict[str, Any] | None = None) -> None:
        self._dynamo = dynamo
        self._ttl_s = tombstone_ttl_s
        self._generation = generation
        self._fence_check = fence_check
        self._capacity = MAX_TRANSACT_ITEMS - (1 if fence_check is not None else 0)
        self._slots: dict[tuple[str, tuple[tuple[str, str, str], ...]], Slot] = {}

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
            slot = Slot(table, key, item_version(item), live, row, row)
            self._slots[ident] = slot
        return slot

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
        return 1

    def _versions(self, changed: list[Slot]) -> list[int]:
        """Each changed slot's version; the slots of one row (a move's two halves) share the highest."""
        versions = [app_version(slot.stored, self._generation) for slot in changed]
        rows: dict[tuple[str, tuple[Any, ...]], int] = {}
        for slot, version in zip(changed, versions, strict=True):
            ident = slot.row_identity
            rows[ident] = max(rows.get(ident, 0), version)
        return [rows[slot.row_identity] for slot in changed]

    def puts(self) -> list[Put]:
        out: list[Put] = []
        changed = [slot for slot in self._slots.values() if slot.changed]
        for slot, version in zip(changed, self._versions(changed), strict=True):
            mapper: TableMapper = slot.table.mapper
            if slot.row is not None:
                op = "update" if slot.was_live else "insert"
                out.append(app_put(mapper, slot.table.target, slot.row, version, slot.stored, op))
            elif slot.was_live and slot.original is not None:
                assert slot.stored is not None
                out.append(app_tombstone(mapper, slot.table.target, slot.original, version, slot.stored,
                                         self._ttl_s))
        return out

    def commit(self) -> int:
        """Write every changed row at once; the number of items written."""
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


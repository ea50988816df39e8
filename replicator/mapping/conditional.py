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
from typing import Any

from replicator.errors import MappingError
from replicator.events import ChangeEvent, Row
from replicator.mapping.mapper import Item, TableMapper
from replicator.mapping.names import (
    DELETED_ATTR,
    ORIGIN_ATTR,
    ORIGIN_CDC,
    ORIGIN_SNAPSHOT,
    TTL_ATTR,
    VERSION_ATTR,
)

CONDITION = "attribute_not_exists(#v) OR #v < :v"


@dataclass(frozen=True, slots=True)
class ConditionalWrite:
    """One version-conditional put of a whole item (an upsert or a tombstone)."""

    table: str  # the DynamoDB table name, prefix included
    key: Item
    item: Item
    version: int
    tombstone: bool

    @property
    def identity(self) -> tuple[str, tuple[tuple[str, str, Any], ...]]:
        """(table, key) in hashable form: the unit of coalescing and of per-item ordering."""
        return self.table, tuple(sorted((name, *next(iter(av.items()))) for name, av in self.key.items()))

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
        return {"Put": self._put()}


def metadata(version: int, origin: str) -> Item:
    return {VERSION_ATTR: {"N": str(version)}, ORIGIN_ATTR: {"S": origin}}


def upsert(mapper: TableMapper, table: str, row: Row, version: int, origin: str) -> ConditionalWrite:
    key = mapper.key(row)
    item = mapper.to_item(row, metadata=metadata(version, origin))
    return ConditionalWrite(table, key, item, version, tombstone=False)


def tombstone(mapper: TableMapper, table: str, row: Row, version: int, origin: str,
              expires_at: int) -> ConditionalWrite:
    """A delete: the key and metadata only, kept until ``expires_at`` (epoch seconds)."""
    key = mapper.key(row)
    item = dict(key)
    item.update(metadata(version, origin))
    item[DELETED_ATTR] = {"BOOL": True}
    item[TTL_ATTR] = {"N": str(int(expires_at))}
    return ConditionalWrite(table, key, item, version, tombstone=True)


def writes_for_event(mapper: TableMapper, table: str, event: ChangeEvent, now: float,
                     tombstone_ttl_s: int) -> list[ConditionalWrite]:
    """The writes one event needs, in order.

    Usually one. An update whose key template reads a non-primary-key column that changed
    moves the item: a tombstone of the old key and a put of the new one, at the same version.
    """
    origin = ORIGIN_SNAPSHOT if event.op == "r" else ORIGIN_CDC
    expires = int(now) + tombstone_ttl_s
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


def is_tombstone(item: dict[str, Any]) -> bool:
    """Readers (validator, shim) treat a tombstone as an absent row."""
    flag = item.get(DELETED_ATTR)
    return bool(flag and flag.get("BOOL"))

"""The client's DynamoDB side: reads of items (tombstones are absent) and phase-5 writes.

Reads are strongly consistent: a read after a write of the same client must see it.

Phase-5 writes are whole-item puts through the shared mapping, each conditional so that
nothing can move an item backwards (DESIGN §3.3, invariant 7):

- versions of application writes carry the phase's (odd) generation in their high bits, above
  every CDC event of the MySQL generations before it (docs/design.md), so no late CDC event
  or backfill row can overwrite them (the writer's condition is ``_version < :v``);
- every write is conditional on the version read before it, or on there being no item at all
  (optimistic concurrency: a concurrent writer makes it retry, never lose an update); see
  :mod:`replicator.client.phase5`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from replicator.adapters.dynamodb import dynamo_errors
from replicator.backoff import Backoff
from replicator.errors import TargetUnavailable
from replicator.events import with_generation
from replicator.mapping import (
    DELETED_ATTR,
    ORIGIN_APP,
    TTL_ATTR,
    VERSION_ATTR,
    Item,
    TableMapper,
    is_tombstone,
)
from replicator.mapping.conditional import metadata

MAX_TRANSACT_ITEMS = 100
_BATCH_GET = 100


def app_version(previous: int | None, generation: int) -> int:
    """The version of an application write at ``generation`` over an item whose version was
    ``previous``: the generation's band, microseconds as the base, never below ``previous + 1``."""
    floor = with_generation(generation, time.time_ns() // 1000)
    return max(floor, (previous or 0) + 1)


def item_version(item: dict[str, Any] | None) -> int | None:
    if not item or VERSION_ATTR not in item:
        return None
    return int(item[VERSION_ATTR]["N"])


@dataclass(frozen=True)
class Put:
    """One conditional put of an application write (an upsert or a tombstone)."""

    table: str
    item: Item
    version: int
    expected: int | None  # the version read before (live item or tombstone); None: there was no item
    op: str  # "insert" | "update" | "delete"
    #: Another condition than the version's (an item with embedded children: its revision):
    #: ``{"ConditionExpression", "ExpressionAttributeNames"[, "ExpressionAttributeValues"]}``.
    condition: dict[str, Any] | None = None

    def request(self) -> dict[str, Any]:
        if self.condition is not None:
            return {"TableName": self.table, "Item": self.item, **self.condition}
        request: dict[str, Any] = {"TableName": self.table, "Item": self.item,
                                   "ExpressionAttributeNames": {"#v": VERSION_ATTR}}
        if self.expected is None:
            request["ConditionExpression"] = "attribute_not_exists(#v)"
        else:
            request["ConditionExpression"] = "#v = :old"
            request["ExpressionAttributeValues"] = {":old": {"N": str(self.expected)}}
        return request


def app_put(mapper: TableMapper, table: str, row: dict[str, Any], version: int, expected: int | None,
            op: str) -> Put:
    item = mapper.to_item(row, metadata=metadata(version, ORIGIN_APP))  # to_item names the table
    return Put(table, item, version, expected, op)


def app_tombstone(mapper: TableMapper, table: str, row: dict[str, Any], version: int, expected: int,
                  ttl_s: int) -> Put:
    item: Item = dict(mapper.key(row))
    item.update(metadata(version, ORIGIN_APP, mapper.table))
    item[DELETED_ATTR] = {"BOOL": True}
    item[TTL_ATTR] = {"N": str(int(time.time()) + ttl_s)}
    return Put(table, item, version, expected, "delete")


class DynamoSide:
    """Reads through ``client`` (its timeouts are the read budget); phase-5 writes through
    ``writer``, with longer timeouts and botocore's retries: ``TransactWriteItems`` carries an
    idempotency token that its retries reuse, so a write whose answer timed out is not applied
    twice, and an application write does not fail for a slow answer the read budget allows."""

    def __init__(self, client: Any, writer: Any | None = None) -> None:
        self.client = client
        self.writer = writer if writer is not None else client

    def get(self, table: str, key: Item) -> dict[str, Any] | None:
        """The item, tombstones included (the caller decides); None when there is none."""
        with dynamo_errors("reading an item", table):
            item = self.client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        return item if item else None

    def get_live(self, table: str, key: Item) -> dict[str, Any] | None:
        item = self.get(table, key)
        return None if item is None or is_tombstone(item) else item

    def batch_get(self, table: str, keys: Sequence[Item], deadline: float, *,
                  tombstones: bool = False) -> list[dict[str, Any] | None]:
        """Items for ``keys`` in order (None for absent, and for tombstones unless ``tombstones``),
        unprocessed keys retried."""
        found: dict[tuple[tuple[str, str, str], ...], dict[str, Any]] = {}
        backoff = Backoff(base_s=0.01, cap_s=0.2)
        for start in range(0, len(keys), _BATCH_GET):
            pending: list[Item] = _distinct(keys[start:start + _BATCH_GET])
            while pending:
                with dynamo_errors("reading items", table):
                    out = self.client.batch_get_item(
                        RequestItems={table: {"Keys": pending, "ConsistentRead": True}})
                for item in out.get("Responses", {}).get(table, []):
                    found[_identity(item, keys[0])] = item
                pending = out.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
                if pending:
                    if time.monotonic() > deadline:
                        raise TargetUnavailable(f"DynamoDB left {len(pending)} key(s) of {table} unprocessed "
                                                "past the read budget", code="UnprocessedKeys")
                    time.sleep(backoff.next())
        result: list[dict[str, Any] | None] = []
        for key in keys:
            item = found.get(_identity(key, key))
            result.append(None if item is None or (is_tombstone(item) and not tombstones) else item)
        return result

    def query(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every page of a query (tombstones are filtered by the caller's FilterExpression)."""
        items: list[dict[str, Any]] = []
        params = dict(params)
        while True:
            with dynamo_errors("querying an access pattern", str(params.get("TableName", ""))):
                page = self.client.query(**params)
            items.extend(page.get("Items", []))
            last = page.get("LastEvaluatedKey")
            if not last:
                return items
            params["ExclusiveStartKey"] = last

    def put(self, put: Put) -> None:
        with dynamo_errors(f"writing ({put.op})", put.table):
            self.writer.put_item(**put.request())

    def transact(self, puts: Sequence[Put], checks: Sequence[dict[str, Any]] = ()) -> None:
        """``checks`` (ConditionCheck elements) first, then the puts, all or nothing."""
        with dynamo_errors("writing a transaction", puts[0].table if puts else ""):
            self.writer.transact_write_items(TransactItems=[*checks, *({"Put": p.request()} for p in puts)])


def _identity(item: dict[str, Any], key_like: Item) -> tuple[tuple[str, str, str], ...]:
    return tuple(sorted((name, *_scalar(item[name])) for name in key_like))


def _scalar(av: dict[str, Any]) -> tuple[str, str]:
    ((tag, payload),) = av.items()
    return tag, payload.hex() if isinstance(payload, bytes | bytearray) else str(payload)


def _distinct(keys: Sequence[Item]) -> list[Item]:
    seen: set[tuple[tuple[str, str, str], ...]] = set()
    out: list[Item] = []
    for key in keys:
        ident = _identity(key, key)
        if ident not in seen:
            seen.add(ident)
            out.append(key)
    return out

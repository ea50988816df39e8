"""The stream validator's reads of both stores (:class:`validators.checks.KeyStores`).

MySQL: the rows of a batch of keys in one consistent snapshot with its binlog position
(:meth:`SnapshotSource.read_keys`, the backfill's reader, so values come out exactly as the
pipeline carries them). DynamoDB: ``BatchGetItem`` with consistent reads, unprocessed keys
retried. Both sides go through one :class:`TableMapper` per table, built from the table's
current shape, the same mapping the writer and the reconciliation use.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from replicator.adapters.dynamodb import dynamo_errors
from replicator.backfill.source import SnapshotSource
from replicator.backoff import Backoff
from replicator.catalog import TableShape
from replicator.errors import TargetUnavailable, UnknownTableError
from replicator.events import Row, binlog_version
from replicator.mapping.conditional import is_tombstone, owned_by
from replicator.mapping.embedded import EmbeddedMapper, entry_version
from replicator.mapping.mapper import TableMapper
from replicator.mapping.names import PARENT_DELETED_ATTR, VERSION_ATTR
from replicator.settings import Settings
from validators.checks import StoredItem

_BATCH_GET = 100  # DynamoDB's BatchGetItem limit
_MYSQL_KEYS = 500  # keys per SELECT

KeyIdentity = tuple[tuple[str, str, str], ...]


def _identity(item: dict[str, Any], names: Sequence[str]) -> KeyIdentity:
    out = []
    for name in names:
        ((tag, payload),) = item[name].items()
        out.append((name, tag, payload.hex() if isinstance(payload, bytes | bytearray) else str(payload)))
    return tuple(out)


class Stores:
    """Reads for the validator; :meth:`start`/:meth:`close` open and close the MySQL connection."""

    def __init__(self, settings: Settings, client: Any, source: SnapshotSource | None = None,
                 unprocessed_budget_s: float = 30.0) -> None:
        self._settings = settings
        self._client = client
        self._src = source or SnapshotSource(settings.mysql)
        self._budget_s = unprocessed_budget_s
        self._tables: dict[str, tuple[TableShape, TableMapper, str]] = {}
        self._embedded: dict[str, EmbeddedMapper] = {}

    def start(self) -> None:
        self._src.start()

    def close(self) -> None:
        self._src.close()

    def forget(self) -> None:
        """Drop the cached table shapes (after a read failed: the table may have changed)."""
        self._tables.clear()
        self._embedded.clear()

    def table(self, source: str) -> tuple[TableShape, TableMapper, str]:
        """The table's current shape, its mapper and its DynamoDB table name (cached)."""
        if source not in self._tables:
            mapping = self._settings.table(source)
            if mapping is None:
                raise UnknownTableError(f"{source} is not a mapped table (tables[].source)")
            shape = self._src.table_shape(mapping.database, mapping.table)
            mapper = TableMapper(mapping, shape.columns, shape.pk)
            mapper.validate()
            target = mapping
            if mapping.embed is not None:  # its rows are entries of the parent's items
                _, parent, _ = self.table(mapping.embed.parent)
                self._embedded[source] = EmbeddedMapper(mapper, parent)
                self._embedded[source].validate()
                target = self._settings.table(mapping.embed.parent) or mapping
            self._tables[source] = (shape, mapper, self._settings.dynamodb.table_prefix + target.target_name)
        return self._tables[source]

    def mapper(self, source: str) -> TableMapper:
        return self.table(source)[1]

    # ----------------------------------------------------------------- KeyStores

    def key_text(self, source: str, image: Row) -> str:
        return self.mapper(source).key_text(image)

    def key_columns(self, source: str) -> tuple[str, ...]:
        return self.mapper(source).key_columns

    def mysql(self, source: str, images: Sequence[Row]) -> tuple[dict[str, Row], dict[str, int]]:
        shape, mapper, _ = self.table(source)
        keys = {tuple(image.get(c) for c in shape.pk): mapper.key_text(image) for image in images}
        listed = list(keys)
        rows: dict[str, Row] = {}
        positions: dict[str, int] = {}
        for start in range(0, len(listed), _MYSQL_KEYS):
            part = listed[start:start + _MYSQL_KEYS]
            chunk = self._src.read_keys(shape, part)
            version = binlog_version(chunk.binlog_file, chunk.binlog_offset)
            for key in part:
                positions[keys[key]] = version
            for row in chunk.rows:
                rows[mapper.key_text(row)] = {c: row.get(c) for c in mapper.attributes}
        return rows, positions

    def dynamodb(self, source: str, images: Sequence[Row]) -> dict[str, StoredItem]:
        _, mapper, table = self.table(source)
        if source in self._embedded:
            return self._entries(self._embedded[source], table, images)
        names = [a.name for a in mapper.key_attributes]
        wanted: dict[KeyIdentity, tuple[str, dict[str, Any]]] = {}
        for image in images:
            key = mapper.key(image)
            wanted[_identity(key, names)] = (mapper.key_text(image), key)
        out: dict[str, StoredItem] = {}
        pending = list(wanted.values())
        for start in range(0, len(pending), _BATCH_GET):
            for item in self._batch_get(table, [k for _, k in pending[start:start + _BATCH_GET]]):
                text, _ = wanted[_identity(item, names)]
                version = int(item[VERSION_ATTR]["N"]) if VERSION_ATTR in item else None
                gone = is_tombstone(item) or not owned_by(item, source)
                out[text] = StoredItem(None if gone else mapper.to_row(item), version)
        return out

    def _entries(self, embedded: EmbeddedMapper, table: str, images: Sequence[Row]) -> dict[str, StoredItem]:
        """An embedded table's rows: the entries of the parent items their images name."""
        names = [a.name for a in embedded.parent.key_attributes]
        keys: dict[KeyIdentity, dict[str, Any]] = {}
        for image in images:
            key = embedded.item_key(image)
            keys.setdefault(_identity(key, names), key)
        items: dict[KeyIdentity, dict[str, Any]] = {}
        pending = list(keys.values())
        for start in range(0, len(pending), _BATCH_GET):
            for item in self._batch_get(table, pending[start:start + _BATCH_GET]):
                items[_identity(item, names)] = item
        out: dict[str, StoredItem] = {}
        for image in images:
            item = items.get(_identity(embedded.item_key(image), names), {})
            entry = item.get(embedded.attribute, {}).get("M", {}).get(embedded.entry_name(image), {}).get("M")
            if entry is None:
                # Taken by its parent's delete: the entry's state is as new as that delete (so a
                # delete after the MySQL read is seen as the row moving on, not as a lost row).
                pdel = item.get(PARENT_DELETED_ATTR)
                if pdel is not None:
                    out[embedded.child.key_text(image)] = StoredItem(None, int(pdel["N"]))
                continue
            live = not entry.get("_deleted", {}).get("BOOL")
            out[embedded.child.key_text(image)] = StoredItem(embedded.to_row(entry) if live else None,
                                                             entry_version(entry))
        return out

    def _batch_get(self, table: str, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        backoff = Backoff(base_s=0.01, cap_s=0.5)
        deadline = time.monotonic() + self._budget_s
        while keys:
            with dynamo_errors("reading items to validate", table):
                out = self._client.batch_get_item(
                    RequestItems={table: {"Keys": keys, "ConsistentRead": True}})
            found += out.get("Responses", {}).get(table, [])
            keys = out.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
            if keys:
                if time.monotonic() > deadline:
                    raise TargetUnavailable(f"DynamoDB left {len(keys)} key(s) of {table} unprocessed",
                                            code="UnprocessedKeys")
                time.sleep(backoff.next())
        return found

"""The table mapping (DESIGN §3.2, §3.3): MySQL rows <-> DynamoDB items, shared by every component.

Pure: no clients, no I/O.

- :mod:`~replicator.mapping.coltypes`: parse ``COLUMN_TYPE`` strings.
- :mod:`~replicator.mapping.values`: one value <-> one attribute value (the type table).
- :mod:`~replicator.mapping.mapper`: :class:`TableMapper` (keys, rename, exclude, overrides).
- :mod:`~replicator.mapping.conditional`: the version-conditional put / tombstone requests.
- :mod:`~replicator.mapping.names`: the fixed metadata attribute names.
- :mod:`~replicator.mapping.indexes`: secondary access patterns (GSIs, their MySQL and DynamoDB
  queries, the order both agree on).
- :mod:`~replicator.mapping.fit`: does a row fit its MySQL columns (phase-5 writes).
"""

from __future__ import annotations

from replicator.errors import UnmappableValueError
from replicator.mapping.coltypes import ColumnType, parse_column_type
from replicator.mapping.conditional import (
    CONDITION,
    ConditionalWrite,
    is_tombstone,
    tombstone,
    upsert,
    writes_for_event,
)
from replicator.mapping.fit import check_row_fits
from replicator.mapping.indexes import (
    GlobalIndex,
    IndexKey,
    IndexMapping,
    dynamodb_query_params,
    mysql_condition,
    mysql_query,
)
from replicator.mapping.mapper import Item, KeyAttribute, TableMapper
from replicator.mapping.names import (
    DELETED_ATTR,
    METADATA_ATTRS,
    ORIGIN_APP,
    ORIGIN_ATTR,
    ORIGIN_CDC,
    ORIGIN_SNAPSHOT,
    PK_ATTR,
    SK_ATTR,
    TTL_ATTR,
    VERSION_ATTR,
)
from replicator.mapping.size import MAX_ITEM_BYTES, item_size
from replicator.mapping.values import AttributeValue

__all__ = [
    "CONDITION", "DELETED_ATTR", "MAX_ITEM_BYTES", "METADATA_ATTRS", "ORIGIN_APP", "ORIGIN_ATTR",
    "ORIGIN_CDC", "ORIGIN_SNAPSHOT", "PK_ATTR", "SK_ATTR", "TTL_ATTR", "VERSION_ATTR",
    "AttributeValue", "ColumnType", "ConditionalWrite", "GlobalIndex", "IndexKey", "IndexMapping", "Item",
    "KeyAttribute", "TableMapper", "UnmappableValueError", "check_row_fits", "dynamodb_query_params",
    "is_tombstone", "item_size", "mysql_condition", "mysql_query", "parse_column_type", "tombstone",
    "upsert", "writes_for_event",
]

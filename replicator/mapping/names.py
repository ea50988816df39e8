"""Fixed attribute names of replicated items (DESIGN §3.3); other components depend on them."""

from __future__ import annotations

from typing import Final

#: The event version that last wrote the item (N). Every pipeline write is conditional on it.
VERSION_ATTR: Final = "_version"
#: Who wrote the item (S): one of the ORIGIN_* values.
ORIGIN_ATTR: Final = "_origin"
#: True on delete tombstones (BOOL); absent on live items.
DELETED_ATTR: Final = "_deleted"
#: Expiry of a tombstone (N, epoch seconds); DynamoDB TTL is enabled on it.
TTL_ATTR: Final = "_ttl"

#: The source table of the item (S, ``database.table``): several tables may share one DynamoDB
#: table (item collections), and every reader keeps only its own table's items.
TABLE_ATTR: Final = "_table"
#: On a parent item with embedded children (M per ``embed.as``): the version of the parent's
#: last delete (N), which an older child event cannot get past, and a revision counter (N)
#: that every write bumps, so a parent delete that reads the children first can tell whether
#: they changed under it.
PARENT_DELETED_ATTR: Final = "_pdel"
REVISION_ATTR: Final = "_rev"

ORIGIN_CDC: Final = "cdc"  # a binlog change event (op c/u/d)
ORIGIN_SNAPSHOT: Final = "snapshot"  # a backfill row (op r)
ORIGIN_APP: Final = "app"  # reserved for the application's own writes (phase 5)

METADATA_ATTRS: Final = frozenset((VERSION_ATTR, ORIGIN_ATTR, DELETED_ATTR, TTL_ATTR, TABLE_ATTR,
                                   PARENT_DELETED_ATTR, REVISION_ATTR))

#: Key attribute names when the key comes from templates (tables[].key.pk / .sk).
PK_ATTR: Final = "pk"
SK_ATTR: Final = "sk"

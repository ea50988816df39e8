"""Which changes of a page MySQL applies, by the version each row last got. Pure: no I/O.

DynamoDB Streams order the records of one item, not of two. A row whose DynamoDB key is not its
primary key alone moves between items when a key column changes (``USER#3/ORDER#7`` ->
``USER#5/ORDER#7``): the tombstone at the old item and the row at the new one reach the
reverse replication in either order, from two shards. So MySQL keeps, per row, the version of
the last change applied to it (the sink's versions table, docs/model.md), and a change is
applied only when it is newer: a higher version, or at the same version an upsert over a delete
(the two halves of a move carry one version, :mod:`replicator.client.phase5`), exactly the
order the writer gives a primary-key update's halves in the other direction. An older or equal
change is *superseded*: nothing to write, and nothing lost, since MySQL already holds a newer
state of that row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from consumers.reverse.model import Change

#: At one version a delete comes before an upsert: the upsert wins whatever the arrival order.
RANK = {"delete": 0, "upsert": 1}

Stamp = tuple[int, int]  # (version, rank)


def _part(value: Any) -> str:
    if value is None:
        return "n"
    if isinstance(value, bytes | bytearray):
        return "b" + bytes(value).hex()
    if isinstance(value, bool):
        return "i" + str(int(value))
    if isinstance(value, int):
        return "i" + str(value)
    if isinstance(value, Decimal):
        return "d" + str(value.normalize())
    if isinstance(value, dt.datetime | dt.date | dt.time | dt.timedelta):
        return "t" + str(value)
    return "s" + str(value)


def row_digest(source: str, pk: Sequence[Any]) -> bytes:
    """A row's identity in the versions table: SHA-256 of its table and primary-key values
    (fixed length, whatever the key's size), the same from an upsert's and a delete's values."""
    text = "\x1f".join([source, *(_part(v) for v in pk)])
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def stamp(change: Change) -> Stamp:
    return change.version, RANK[change.op]


def newer(changes: Sequence[Change], stored: Mapping[bytes, Stamp]) -> tuple[list[bool], dict[bytes, Stamp]]:
    """For each change in stream order: is it to be applied? And the stamp each row ends with.

    A change applies when its stamp is above the row's stored stamp and above every earlier
    change of the page that applied; the rows' final stamps are what the versions table gets."""
    latest: dict[bytes, Stamp] = {}
    applies: list[bool] = []
    for change in changes:
        digest = row_digest(change.source, change.pk)
        mine = stamp(change)
        current = latest.get(digest, stored.get(digest))
        if current is None or mine > current:
            latest[digest] = mine
            applies.append(True)
        else:
            applies.append(False)
    return applies, latest

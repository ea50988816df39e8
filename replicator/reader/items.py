"""What a change source yields: the binlog reduced to transactions, row changes and statements.

Pure data, so the reader loop can be driven by the real binlog adapter
(:mod:`replicator.adapters.binlog`) or by an in-memory fake in unit tests (the
:class:`~replicator.reader.ports.ChangeSource` Protocol).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from replicator.events import Row
from replicator.reader.schema import TableSchema

RowsKind = Literal["insert", "update", "delete"]


@dataclass(frozen=True, slots=True)
class TxBegin:
    gtid: str | None
    file: str
    offset: int  # start offset of the event that opened the transaction
    ts: int  # event timestamp, seconds


@dataclass(frozen=True, slots=True)
class RawRows:
    """A rows event's row bytes as the binlog has them, for the compiled path (:mod:`.rowcodec`)."""

    body: bytes  # the row images, after the event's header and column bitmaps
    bitmaps: tuple[bytes, ...]  # columns-present bitmap(s): one, two for updates


@dataclass(frozen=True, slots=True)
class RowsChange:
    """One rows event of a mapped table: images per row (one, or before/after for updates).

    ``raw``: the bytes ``rows`` decode from, when the source has them (the binlog adapter); the
    compiled path encodes events from them without decoding ``rows``.
    """

    schema: TableSchema
    kind: RowsKind
    rows: Sequence[tuple[Row, ...]]
    file: str
    offset: int  # the rows event's START offset (log_pos - event_size)
    ts: int
    raw: RawRows | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    """A statement in the binlog (DDL and the like), inside its own transaction."""

    query: str
    db: str
    file: str
    offset: int
    ts: int


@dataclass(frozen=True, slots=True)
class TxEnd:
    file: str
    next_offset: int  # where the event after the commit starts: the resume position
    ts: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The server has nothing newer to send (the reader is caught up)."""

    file: str


Item = TxBegin | RowsChange | Statement | TxEnd | Heartbeat


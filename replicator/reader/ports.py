"""The Protocols the reader depends on; the real implementations are injected by :mod:`.service`.

- ``ChangeSource``: the binlog opened at a position
  (:class:`replicator.adapters.binlog.BinlogSource`);
- ``CheckpointStore``: the last committed checkpoint, and ``EventSink``: records and the
  checkpoint after them, committed atomically (both :class:`replicator.reader.sink.KafkaTransactionalSink`);
- ``SourceServer``: the server's metadata over SQL (:class:`replicator.reader.server.ServerInfo`);
- ``LagListener``: told the reader's lag (:class:`replicator.reader.heartbeat.HeartbeatPublisher`).

In-memory fakes implement these for unit tests. Every method may raise only errors of
:mod:`replicator.errors`: a :class:`~replicator.errors.TransientError` is retried by the reader
(a :class:`~replicator.errors.SourceUnavailable` from the source resumes at the last
checkpoint; anything else transient rebuilds the sink), a
:class:`~replicator.errors.FatalDataError` stops it after committing the complete transactions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from replicator.reader.checkpoint import Checkpoint
from replicator.reader.gtid import StartAt
from replicator.reader.items import Item
from replicator.reader.schema import Catalog

__all__ = ["ChangeSource", "CheckpointStore", "EventSink", "LagListener", "SinkFactory", "SourceFactory",
           "SourceServer"]


class ChangeSource(Protocol):
    """A binlog opened at a position; ``items()`` blocks until something arrives.

    ``close()`` may be called from another thread while ``items()`` blocks; it makes the
    iteration end (or fail) soon.
    """

    def items(self) -> Iterator[Item]: ...

    def close(self) -> None: ...


class CheckpointStore(Protocol):
    """Where the committed checkpoint is read back from (``None``: nothing committed yet)."""

    def last_checkpoint(self) -> Checkpoint | None: ...


class EventSink(CheckpointStore, Protocol):
    """A transactional sink: records and the checkpoint become visible together or not at all.

    ``begin()`` opens a transaction, ``send()`` adds a record to it (``send_all()`` several, in
    order, and returns their key and value bytes), ``commit(checkpoint)`` adds the checkpoint
    record and commits; ``abort()`` drops the open transaction.
    """

    def begin(self) -> None: ...

    def send(self, topic: str, key: bytes, value: bytes) -> None: ...

    def send_all(self, records: Sequence[tuple[str, bytes, bytes]]) -> int: ...

    def commit(self, checkpoint: Checkpoint) -> None: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...


class SourceServer(Protocol):
    """What the start position and the start-up checks read from the source server."""

    def binlog_variables(self) -> dict[str, str]: ...

    def grants(self) -> list[str]: ...

    def binlog_files(self) -> list[str]: ...

    def head(self) -> tuple[str, int]: ...

    def tables(self, mapped: set[str]) -> tuple[set[str], set[str]]: ...

    def foreign_keys(self, mapped: set[str]) -> list[tuple[str, str, str, str, str, str]]: ...

    def catalog(self, mapped: set[str]) -> Catalog: ...


class LagListener(Protocol):
    """Told the reader's lag behind the server whenever it is known; closed when the reader stops."""

    def __call__(self, lag_s: float, checkpoint: Checkpoint | None) -> None: ...

    def close(self) -> None: ...


SourceFactory = Callable[[StartAt], ChangeSource]
SinkFactory = Callable[[], EventSink]

"""The Protocols the reverse loop depends on; real implementations are injected by :mod:`.service`.

- ``StreamSource``: DynamoDB Streams (:class:`consumers.reverse.streams.DynamoStreams`);
- ``RowSink``: MySQL (:class:`consumers.reverse.sink.MySQLSink`).

In-memory fakes of both live with the tests (``tests/consumers/reverse/fakes.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from consumers.reverse.model import Change, Outcome
from consumers.reverse.shards import Shard


class StreamSource(Protocol):
    def stream_arn(self, table: str) -> str:
        """The table's current stream (NEW_AND_OLD_IMAGES); :class:`ConfigError` naming the table
        when it has none, or one of another view type."""
        ...

    def shards(self, table: str, stream_arn: str) -> list[Shard]:
        """Every shard the stream lists, parents before children."""
        ...

    def iterator(self, table: str, stream_arn: str, shard: str, after: str | None) -> str:
        """An iterator just after sequence ``after``, or at the shard's oldest record (None).
        A trimmed position raises :class:`TargetRejected` with code ``TrimmedDataAccessException``."""
        ...

    def records(self, table: str, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``limit`` records and the next iterator (None: the shard is closed and read to
        its end). An expired iterator raises :class:`TargetUnavailable` with code
        ``ExpiredIteratorException``."""
        ...


class RowSink(Protocol):
    def start(self) -> None: ...

    def close(self) -> None: ...

    def apply(self, changes: Sequence[Change]) -> list[Outcome]:
        """Apply ``changes`` in order and commit; one :class:`Outcome` per change. A failure of
        the server (:class:`SourceUnavailable`) raises, with nothing committed."""
        ...

    def prune_versions(self, older_than_s: float) -> int:
        """Delete the row versions not changed for ``older_than_s``; how many were deleted."""
        ...

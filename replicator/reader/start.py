"""Where the binlog reader (re)starts: the checkpoint, else ``--from``, else the binlog head.

Pure decisions over injected reads of the server (the binlog head and the files it still
has), so that a purged position stops the reader with :class:`~replicator.errors.BinlogPurgedError`
before anything is read (DESIGN §4 invariant 6).
"""

from __future__ import annotations

from collections.abc import Callable

import structlog

from replicator.reader.checkpoint import Checkpoint
from replicator.reader.checks import check_position_available
from replicator.reader.gtid import StartAt

__all__ = ["StartPositions"]

log = structlog.get_logger("replicator.reader")


class StartPositions:
    """Where to (re)start: the checkpoint, else --from, else the binlog head. Injected I/O."""

    def __init__(self, head: Callable[[], tuple[str, int]], binlog_files: Callable[[], list[str]],
                 explicit: StartAt | None) -> None:
        self._head, self._files, self._explicit = head, binlog_files, explicit

    def resolve(self, cp: Checkpoint | None) -> tuple[StartAt, str]:
        """The start position and the GTID position (MariaDB ``gtid_binlog_pos`` form) at it."""
        if cp is not None:
            if self._explicit is not None:
                log.warning("from_ignored", reason="a checkpoint exists", checkpoint=cp.describe(),
                            requested=self._explicit.describe())
            check_position_available(cp.file, self._files(), "the checkpoint position")
            return StartAt(file=cp.file, offset=cp.offset), cp.gtid_position
        if self._explicit is not None:
            if self._explicit.file:
                check_position_available(self._explicit.file, self._files(), "the --from position")
            return self._explicit, (self._explicit.gtid or "")
        file, pos = self._head()
        return StartAt(file=file, offset=pos), ""

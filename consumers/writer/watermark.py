"""The writer's half of the applied watermark: the ``watermark.writer.<member>`` marker.

Its format and what it claims are in :mod:`replicator.control.watermark`: for each partition,
the next offset after the records this member has applied to DynamoDB (or dead-lettered) and
committed, and for partitions it was assigned, the group's committed offset at assignment, so
that a partition nobody consumes from (nothing new in it) is still shown as applied.

Synchronous and throttled, driven by the writer loop (:class:`~consumers.writer.runner.Writer`):
:meth:`OffsetsPublisher.record` after each commit, :meth:`OffsetsPublisher.publish_due` when
:meth:`OffsetsPublisher.wait_s` says a write is due (the loop shortens its poll to that, so the
last change of a burst goes out within ``interval_s``). At most one write per ``interval_s``,
a refresh every ``refresh_s`` (the ``ts`` of a live member stays fresh), and once per process
the markers of members silent for ``prune_after_s`` are deleted (they are true but useless;
deleting one only makes waiters more cautious). A store that is down is logged and counted
(``failures``), retried after ``retry_s``, never fatal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import structlog

from replicator.control import ControlStore, names
from replicator.control.watermark import TopicPartition, offsets_to_doc
from replicator.errors import ControlStoreUnavailable

__all__ = ["OffsetsPublisher"]

log = structlog.get_logger("consumers.writer")


class OffsetsPublisher:
    def __init__(self, store: ControlStore, member: str, group: str, *, interval_s: float = 0.05,
                 retry_s: float = 1.0, refresh_s: float = 60.0, prune_after_s: float = 86_400.0,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._store = store
        self.member = member
        self._name = names.writer_offsets_marker(member)
        self._group = group
        self._interval_s = interval_s
        self._retry_s = retry_s
        self._refresh_s = refresh_s
        self._prune_after_s = prune_after_s
        self._clock = clock
        self._wall = wall
        self._offsets: dict[TopicPartition, int] = {}
        self._dirty = False
        self._next_at = float("-inf")  # nothing is written before this (throttle, retry)
        self._refresh_at = float("inf")
        self._pruned = False
        self.writes = 0
        self.failures = 0

    @property
    def offsets(self) -> dict[TopicPartition, int]:
        return dict(self._offsets)

    def record(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Next offsets applied (and committed); negative ones (nothing committed) are ignored."""
        for tp, offset in offsets.items():
            if offset > self._offsets.get(tp, 0):
                self._offsets[tp] = offset
                self._dirty = True

    def wait_s(self) -> float | None:
        """Seconds until a write is due (0: now); None when nothing is pending."""
        if not self._offsets:
            return None
        due = max(self._next_at, self._clock()) if self._dirty else max(self._next_at, self._refresh_at)
        return max(0.0, due - self._clock())

    def publish_due(self) -> bool:
        """Write the marker if a write is due; True if one was written."""
        wait = self.wait_s()
        if wait is None or wait > 0:
            return False
        return self._write()

    def flush(self) -> bool:
        """Write pending changes now, throttle or not (at the end of the loop)."""
        return self._write() if self._dirty else False

    def _write(self) -> bool:
        now = self._clock()
        doc = {"ts": self._wall(), "member": self.member, "group": self._group,
               "offsets": offsets_to_doc(self._offsets)}
        try:
            self._store.put_marker(self._name, doc)
        except ControlStoreUnavailable as exc:
            self.failures += 1
            self._next_at = now + self._retry_s
            log.warning("writer_watermark_failed", error=str(exc), member=self.member)
            return False
        self.writes += 1
        self._dirty = False
        self._next_at = now + self._interval_s
        self._refresh_at = now + self._refresh_s
        if not self._pruned:
            self._prune()
        return True

    def _prune(self) -> None:
        self._pruned = True
        horizon = self._wall() - self._prune_after_s
        try:
            stale = [name for name, doc in self._store.list_markers(names.WRITER_OFFSETS_PREFIX).items()
                     if name != self._name and _ts(doc) < horizon]
            for name in stale:
                self._store.delete_marker(name)
        except ControlStoreUnavailable as exc:
            self.failures += 1
            log.warning("writer_watermark_prune_failed", error=str(exc))
            return
        if stale:
            log.info("writer_watermarks_pruned", members=len(stale), silent_for_s=self._prune_after_s)


def _ts(doc: Mapping[str, object]) -> float:
    ts = doc.get("ts")
    return float(ts) if isinstance(ts, int | float) else 0.0

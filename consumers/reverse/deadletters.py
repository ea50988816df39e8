"""Dead letters of the reverse replication: control-store markers, one per MySQL row.

Why markers (``reverse.deadletter.<database.table>.<key>``) and not a Kafka topic: the switch
back from phase 5 must know whether any phase-5 write is *still* missing from MySQL, by key.
A marker per row answers that exactly: writing it again after a restart re-applies a page is
harmless, and a later change of the same row that MySQL takes supersedes it (the marker is
deleted: MySQL holds the row's current state again). A topic is a log of every failure ever
seen, which cannot say what is outstanding. The item itself stays in DynamoDB; the marker
holds the key, the reason and where the record was, never the row's values.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import structlog

from consumers.reverse.metrics import ReverseMetrics
from consumers.reverse.model import Rejected
from replicator.control import ControlStore, names

log = structlog.get_logger("consumers.reverse")

#: How many keys the heartbeat names (the count is always exact).
HEARTBEAT_KEYS = 20
_MAX_KEY_CHARS = 200


def marker_key(key_text: str) -> str:
    """The key part of a marker name; a very long key is shortened with a digest."""
    if len(key_text) <= _MAX_KEY_CHARS:
        return key_text
    return key_text[:_MAX_KEY_CHARS - 17] + "~" + hashlib.sha256(key_text.encode()).hexdigest()[:16]


class DeadLetters:
    """The outstanding dead letters, mirrored in memory (loaded once at start-up)."""

    def __init__(self, store: ControlStore, metrics: ReverseMetrics) -> None:
        self._store = store
        self._metrics = metrics
        self._open: dict[str, str] = {}  # marker name -> "source key" for the heartbeat

    def load(self) -> None:
        for name, doc in self._store.list_markers(names.REVERSE_DEADLETTER_PREFIX).items():
            self._open[name] = f"{doc.get('table', '?')} {doc.get('key', '?')}"
        self._metrics.dead_letters_open.set(len(self._open))

    @property
    def count(self) -> int:
        return len(self._open)

    def keys(self, limit: int = HEARTBEAT_KEYS) -> list[str]:
        return sorted(self._open.values())[:limit]

    def add(self, r: Rejected, shard: str, table: str) -> None:
        """List ``r`` (idempotent); raises :class:`ControlStoreUnavailable` when it cannot."""
        name = names.reverse_deadletter_marker(r.source, marker_key(r.key_text))
        doc: dict[str, Any] = {"table": r.source, "target": table, "key": r.key_text, "reason": r.reason,
                               "message": r.message, "version": r.version, "shard": shard,
                               "sequence": r.sequence, "at": time.time()}
        self._store.put_marker(name, doc)
        self._open[name] = f"{r.source} {r.key_text}"
        self._metrics.dead_letters.labels(r.reason).inc()
        self._metrics.dead_letters_open.set(len(self._open))
        log.warning("reverse_dead_letter", marker="DualWrite", table=r.source, key=r.key_text,
                    reason=r.reason, version=r.version, shard=shard, sequence=r.sequence, message=r.message)

    def clear(self, source: str, key_text: str) -> None:
        """A later change of the row was applied: its dead letter no longer stands."""
        name = names.reverse_deadletter_marker(source, marker_key(key_text))
        if name not in self._open:
            return
        self._store.delete_marker(name)
        del self._open[name]
        self._metrics.dead_letters_open.set(len(self._open))
        log.info("reverse_dead_letter_cleared", marker="DualWrite", table=source, key=key_text)

"""Read-your-writes: which rows this client wrote recently, and up to which MySQL transaction.

After a MySQL write the client remembers the written keys with the transaction's GTID
(``@@last_gtid``) for ``client.remember_writes_s``. A phase-4 read of such a key (or a query
of a table with such a key) first waits, bounded, until the pipeline has applied that GTID,
then reads DynamoDB; if the wait runs out, the read is served from MySQL and counted as a
fallback. A key whose write is known to be applied is forgotten at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from replicator.control.watermark import parse_gtid_position


class RecentWrites:
    def __init__(self, remember_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._remember_s = remember_s
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], tuple[str, float]] = {}  # (table, key text) -> (gtid, until)
        self._given: dict[tuple[str, str], dict[str, Any]] = {}  # (table, key text) -> the key itself

    def record(self, table: str, keys: Iterable[tuple[str, dict[str, Any]]], gtid: str | None) -> None:
        """``keys``: (key text, primary-key dict) of each row a committed transaction wrote."""
        if not gtid:
            return
        until = self._clock() + self._remember_s
        with self._lock:
            for text, key in keys:
                self._keys[(table, text)] = (gtid, until)
                self._given[(table, text)] = key
            if len(self._keys) > 100_000:
                self._expire()

    def keys(self, table: str) -> list[dict[str, Any]]:
        """The primary keys of ``table`` this client wrote within the memory window."""
        now = self._clock()
        with self._lock:
            return [self._given[k] for k, (_, until) in self._keys.items() if k[0] == table and until >= now]

    def pending(self, table: str, key: str | None = None) -> str | None:
        """The GTID a read must wait for: of this key, or (key None) of any key of the table."""
        now = self._clock()
        with self._lock:
            if key is not None:
                found = self._keys.get((table, key))
                if found is None or found[1] < now:
                    return None
                return found[0]
            gtids = [g for (t, _), (g, until) in self._keys.items() if t == table and until >= now]
        return combine(gtids) if gtids else None

    def applied(self, table: str, gtid: str) -> None:
        """Everything of ``table`` written up to ``gtid`` is in DynamoDB: forget those keys."""
        with self._lock:
            covered = _seqs(gtid)
            done = [k for k, (g, _) in self._keys.items()
                    if k[0] == table and all(covered.get(d, -1) >= n for d, n in _seqs(g).items())]
            for k in done:
                del self._keys[k]
                self._given.pop(k, None)

    def _expire(self) -> None:
        now = self._clock()
        for k in [k for k, (_, until) in self._keys.items() if until < now]:
            del self._keys[k]
            self._given.pop(k, None)


def _seqs(position: str) -> dict[int, int]:
    """``"0-1-5,1-2-9"`` (or one GTID) -> {domain: seq}; a form that is not a GTID gives {}."""
    try:
        return parse_gtid_position(position)
    except ValueError:
        return {}


def combine(gtids: Iterable[str]) -> str:
    """The smallest MariaDB GTID position covering every one of ``gtids`` (per-domain maximum)."""
    merged: dict[int, int] = {}
    for g in gtids:
        for domain, seq in _seqs(g).items():
            merged[domain] = max(seq, merged.get(domain, -1))
    return ",".join(f"{d}-0-{n}" for d, n in sorted(merged.items()))

"""Lag and the ``reverse.heartbeat`` marker: what the gates and the write-target switch read.

``caught_up_at`` is the drain check of the switch back from phase 5 (docs/design.md): drained
when ``caught_up_at`` is later than the fence time and no dead letter is outstanding. It is the
time the earliest read of the last round was sent, in a round that found every open shard read
to its end with nothing left to apply or to checkpoint, minus ``settle_s``: a write is in the
stream a moment after DynamoDB acknowledged it (DynamoDB Streams gives no bound; typically well
under a second), so only writes older than that are known to have been seen. Pure: the clock
is injected.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Progress:
    def __init__(self, *, settle_s: float = 0.5, interval_s: float = 0.5,
                 clock: Callable[[], float] = time.time) -> None:
        self.settle_s = settle_s
        self.interval_s = interval_s
        self.clock = clock
        self.newest_applied_at: float | None = None  # when the newest applied write was made
        self.caught_up = False
        self.caught_up_at = 0.0
        self.behind = 0
        self.applied_total = 0
        self._published_at = float("-inf")

    def applied(self, written_at: float, count: int = 1) -> None:
        self.applied_total += count
        if self.newest_applied_at is None or written_at > self.newest_applied_at:
            self.newest_applied_at = written_at

    def round_done(self, seen_at: float, caught_up: bool, behind: int) -> None:
        """One pass over every readable shard, whose reads were all sent at ``seen_at`` or later
        (wall clock)."""
        self.caught_up = caught_up
        self.behind = 0 if caught_up else behind
        if caught_up:
            self.caught_up_at = max(self.caught_up_at, seen_at - self.settle_s)

    def lag_s(self, now: float | None = None) -> float:
        if self.caught_up or self.newest_applied_at is None:
            return 0.0
        return max(0.0, (self.clock() if now is None else now) - self.newest_applied_at)

    def due(self) -> bool:
        """Publish at least every ``interval_s``, and at once on every round that is caught up."""
        return self.caught_up or self.clock() - self._published_at >= self.interval_s

    def heartbeat(self, deadletters: int, deadletter_keys: list[str], **extra: Any) -> dict[str, Any]:
        now = self.clock()
        self._published_at = now
        return {"ts": now, "lag_s": round(self.lag_s(now), 3), "records_behind": self.behind,
                "caught_up": self.caught_up, "caught_up_at": self.caught_up_at, "deadletters": deadletters,
                "deadletter_keys": deadletter_keys, "applied": self.applied_total, **extra}

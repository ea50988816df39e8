"""Pace the backfill: a rows/s cap, and an adaptive back-off when MySQL slows down or lag grows.

Pure logic with an injected clock and sleep, so the rules are unit-tested without waiting.
The back-off is multiplicative-increase / gradual-decrease on a pause between chunks:
a chunk whose SELECT took longer than ``max_query_s``, or a replication lag above
``max_lag_s``, doubles the pause (up to ``max_pause_s``); a healthy chunk halves it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Throttle:
    max_rows_per_s: float  # 0 = no cap
    max_query_s: float = 0.5
    max_lag_s: float = 10.0
    min_pause_s: float = 0.05
    max_pause_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], object] = time.sleep
    pause_s: float = 0.0
    _allowance_at: float | None = field(default=None, repr=False)

    def observe(self, query_s: float, lag_s: float | None) -> str | None:
        """Feed one chunk's SELECT latency and the current lag; returns why it backed off."""
        reason = None
        if query_s > self.max_query_s:
            reason = f"query took {query_s:.2f}s > {self.max_query_s:.2f}s"
        elif lag_s is not None and lag_s > self.max_lag_s:
            reason = f"replication lag {lag_s:.1f}s > {self.max_lag_s:.1f}s"
        if reason:
            self.pause_s = min(self.max_pause_s, max(self.min_pause_s, self.pause_s * 2))
        else:
            self.pause_s = self.pause_s / 2 if self.pause_s > self.min_pause_s else 0.0
        return reason

    def wait(self, rows: int) -> float:
        """Sleep as the cap and the back-off require after a chunk of ``rows``; returns the wait."""
        now = self.clock()
        wait = self.pause_s
        if self.max_rows_per_s > 0:
            start = now if self._allowance_at is None else max(self._allowance_at, now)
            self._allowance_at = start + rows / self.max_rows_per_s
            wait = max(wait, self._allowance_at - now)
        if wait > 0:
            self.sleep(wait)
        return wait

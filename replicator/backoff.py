"""One backoff for every retry loop: exponential growth, capped, with full jitter.

``delay(attempt)`` is ``uniform(0, min(cap, base * 2**attempt))`` (AWS's "full jitter"): many
processes retrying against one recovering server spread out instead of arriving in waves.
``next()`` / ``reset()`` keep the attempt count for loops that hold one ``Backoff`` across
iterations (the reader's reconnect loop). Pure: inject ``rng`` for reproducible tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base_s: float = 0.05
    cap_s: float = 5.0
    rng: random.Random | None = None
    attempt: int = field(default=0, init=False)

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt + 1`` (``attempt`` counts failures so far)."""
        ceiling = min(self.cap_s, self.base_s * 2 ** min(attempt, 30))
        return (self.rng or random).uniform(0, ceiling)

    def next(self) -> float:
        """The next wait of a running retry loop; each call counts one more failure."""
        wait = self.delay(self.attempt)
        self.attempt += 1
        return wait

    def reset(self) -> None:
        """After a success: the next failure waits the shortest time again."""
        self.attempt = 0

"""An in-process control store with the same behaviour as the real ones, for unit tests."""

from __future__ import annotations

import copy
import threading
import time
from collections import defaultdict
from typing import Any

from replicator.control.state import HistoryEntry, PhaseState, bucket_of, buckets_between
from replicator.errors import EpochConflict


class MemoryControlStore:
    def __init__(self) -> None:
        self._state = PhaseState()
        self._history: list[HistoryEntry] = []
        self._counters: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self._markers: dict[str, dict[str, Any]] = {}
        self._changed = threading.Condition()

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> MemoryControlStore:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def get_phase(self) -> PhaseState:
        with self._changed:
            return self._state

    def compare_and_set(self, new: PhaseState, entry: HistoryEntry) -> None:
        with self._changed:
            if self._state.epoch != new.epoch - 1:
                raise EpochConflict(new.epoch - 1, self._state.epoch)
            self._state = new
            self._history.append(entry)
            self._changed.notify_all()

    def history(self) -> list[HistoryEntry]:
        with self._changed:
            return list(self._history)

    def wait_for_change(self, known_epoch: int, timeout: float) -> PhaseState | None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._state.epoch == known_epoch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
            return self._state

    def incr(self, name: str, amount: int = 1, at: float | None = None) -> None:
        self.incr_many({name: amount}, at)

    def incr_many(self, amounts: dict[str, int], at: float | None = None) -> None:
        bucket = bucket_of(time.time() if at is None else at)
        with self._changed:
            for name, amount in amounts.items():
                self._counters[name][bucket] += amount

    def window_sum(self, name: str, since: float, until: float) -> int:
        with self._changed:
            buckets = self._counters.get(name, {})
            return sum(buckets.get(b, 0) for b in buckets_between(since, until))

    def put_marker(self, name: str, doc: dict[str, Any]) -> None:
        with self._changed:
            self._markers[name] = copy.deepcopy(doc)

    def get_marker(self, name: str) -> dict[str, Any] | None:
        with self._changed:
            doc = self._markers.get(name)
            return None if doc is None else copy.deepcopy(doc)

    def delete_marker(self, name: str) -> None:
        with self._changed:
            self._markers.pop(name, None)

    def list_markers(self, prefix: str) -> dict[str, dict[str, Any]]:
        with self._changed:
            return {k: copy.deepcopy(v) for k, v in sorted(self._markers.items()) if k.startswith(prefix)}

"""The control-store interface: phase state (compare-and-set on ``epoch``), its append-only
history, time-bucketed gate counters and small JSON markers, behind one Protocol.

Implementations: :mod:`replicator.control.redis_store` (keys + pub/sub channel under
``settings.namespace``), :mod:`replicator.control.dynamodb_store` (one control table) and
:mod:`replicator.control.memory` (in-process, for unit tests of pure logic).

No I/O in constructors: call ``start()`` / ``close()`` or use the store as a context manager.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from replicator.control.state import HistoryEntry, PhaseState


@runtime_checkable
class ControlStore(Protocol):
    # lifecycle
    def start(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> ControlStore: ...
    def __exit__(self, *exc: object) -> None: ...

    # phase state (DESIGN §3.4)
    def get_phase(self) -> PhaseState:
        """The current document; phase 1 / epoch 0 when never set."""
        ...

    def compare_and_set(self, new: PhaseState, entry: HistoryEntry) -> None:
        """Store ``new`` and append ``entry`` atomically if the stored epoch is ``new.epoch - 1``.

        Raises :class:`EpochConflict` otherwise; then nothing is written.
        """
        ...

    def history(self) -> list[HistoryEntry]:
        """Every change, oldest first."""
        ...

    def wait_for_change(self, known_epoch: int, timeout: float) -> PhaseState | None:
        """Block up to ``timeout`` s until the stored epoch differs from ``known_epoch``.

        Returns the new state, or None on time-out. Redis wakes on its pub/sub channel;
        DynamoDB polls.
        """
        ...

    # counters for the gates: per-minute buckets, summed over a window (epoch seconds)
    def incr(self, name: str, amount: int = 1, at: float | None = None) -> None: ...
    def incr_many(self, amounts: dict[str, int], at: float | None = None) -> None: ...
    def window_sum(self, name: str, since: float, until: float) -> int: ...

    # small JSON documents: progress markers, heartbeats
    def put_marker(self, name: str, doc: dict[str, Any]) -> None: ...
    def get_marker(self, name: str) -> dict[str, Any] | None: ...
    def delete_marker(self, name: str) -> None: ...
    def list_markers(self, prefix: str) -> dict[str, dict[str, Any]]:
        """Every marker whose name starts with ``prefix``, by name."""
        ...

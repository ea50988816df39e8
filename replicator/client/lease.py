"""A client's lease and its write gate: how a switch of the write target pauses writes.

Every client holds a lease in the control store (marker ``client.lease.<id>``: who it is, until
when it is alive, and the last freeze epoch it acknowledged), renewed every second. The
switch protocol (docs/design.md) waits only for live leases; a client whose own lease has
lapsed (it could not renew within ``cutover.lease_ttl_s``) refuses to write, because the
controller no longer waits for it.

:class:`WriteGate` is the client side of a freeze: while the phase document carries a
freeze, new writes wait (bounded by ``cutover.max_write_pause_s``) for the phase to move on;
writes already in flight finish; once none is in flight the client acknowledges the freeze
epoch in its lease.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import structlog

from replicator.control import ControlStore, PhaseState
from replicator.errors import ReplicatorError, WriteFrozenError

log = structlog.get_logger("replicator.client")

LEASE_PREFIX = "client.lease."


class Lease:
    def __init__(self, store: ControlStore, name: str, *, ttl_s: float, interval_s: float = 1.0,
                 on_failure: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._store = store
        self.id = f"{name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
        self.marker = LEASE_PREFIX + self.id
        self._name = name
        self._ttl_s = ttl_s
        self._interval_s = interval_s
        self._on_failure = on_failure or (lambda: None)
        self._clock, self._wall = clock, wall
        self._valid_until = float("-inf")
        self._acked_epoch = 0
        self._phase = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, phase: int) -> None:
        self._phase = phase
        self.renew()
        self._thread = threading.Thread(target=self._run, name="client-lease", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._interval_s + 5)
            self._thread = None
        try:
            self._store.delete_marker(self.marker)
        except ReplicatorError as exc:
            log.warning("client_lease_not_removed", lease=self.id, error=str(exc))

    def valid(self) -> bool:
        return self._clock() < self._valid_until

    def ack(self, epoch: int, phase: int) -> None:
        with self._lock:
            self._acked_epoch = max(self._acked_epoch, epoch)
            self._phase = phase
        self.renew()

    def renew(self) -> None:
        now = self._clock()
        with self._lock:
            doc: dict[str, Any] = {
                "name": self._name, "host": socket.gethostname(), "pid": os.getpid(),
                "expires_at": self._wall() + self._ttl_s, "acked_epoch": self._acked_epoch,
                "phase": self._phase,
            }
        try:
            self._store.put_marker(self.marker, doc)
        except ReplicatorError as exc:
            self._on_failure()
            log.warning("client_lease_not_renewed", lease=self.id, error=str(exc),
                        lapses_in_s=round(max(0.0, self._valid_until - now), 2))
            return
        self._valid_until = now + self._ttl_s

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.renew()


ABORT_GRACE_S = 2.0  # beyond the pause bound: the controller's abort, the fence reopened, the watcher


class WriteGate:
    """Counts writes in flight; holds new ones while the phase is frozen (see the module doc)."""

    def __init__(self, lease: Lease, max_pause_s: float,
                 clock: Callable[[], float] = time.monotonic, abort_grace_s: float = ABORT_GRACE_S) -> None:
        self._lease = lease
        self._max_pause_s = max_pause_s
        self._grace_s = abort_grace_s
        self._clock = clock
        self._cond = threading.Condition()
        self._state = PhaseState()
        self._in_flight = 0
        self.longest_wait_s = 0.0

    def update(self, state: PhaseState) -> None:
        """A new phase document (from the watcher): wake waiting writers; acknowledge a freeze."""
        with self._cond:
            self._state = state
            self._cond.notify_all()
        if state.freeze is not None:
            threading.Thread(target=self._acknowledge, args=(state,), name="client-freeze-ack",
                             daemon=True).start()

    def _acknowledge(self, state: PhaseState) -> None:
        deadline = self._clock() + self._max_pause_s
        with self._cond:
            while self._in_flight and self._state.epoch == state.epoch:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    log.warning("freeze_not_acknowledged", epoch=state.epoch, in_flight=self._in_flight)
                    return
                self._cond.wait(remaining)
            if self._state.epoch != state.epoch:
                return  # the switch moved on (or aborted) meanwhile
        self._lease.ack(state.epoch, state.phase)
        target = state.freeze.target if state.freeze else None
        log.info("freeze_acknowledged", epoch=state.epoch, target=target)

    def enter(self) -> PhaseState:
        """Begin a write: the phase snapshot it runs under, once writes are open.

        A write that arrives during a freeze waits for the switch to flip or to abort: the
        controller aborts once ``cutover.max_write_pause_s`` has run out, and reopening the old
        store and telling this client take a moment more (:data:`ABORT_GRACE_S`). Only a switch
        that neither flips nor aborts by then (its controller died) fails the write."""
        started = self._clock()
        deadline = started + self._max_pause_s + self._grace_s
        with self._cond:
            while True:
                if not self._lease.valid():
                    raise WriteFrozenError(
                        "this client's lease in the control store has lapsed, so a switch of the write "
                        "target would not wait for it: writes are refused until it is renewed")
                state = self._state
                if state.freeze is None:
                    self._in_flight += 1
                    self.longest_wait_s = max(self.longest_wait_s, self._clock() - started)
                    return state
                remaining = deadline - self._clock()
                if remaining <= 0:
                    raise WriteFrozenError(
                        f"writes are paused for a switch to phase {state.freeze.target} that has not "
                        f"finished within cutover.max_write_pause_s ({self._max_pause_s} s) and did not "
                        "abort either (is the controller that started it still running? see `replicator "
                        "phase status`); retry")
                self._cond.wait(remaining)

    def leave(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

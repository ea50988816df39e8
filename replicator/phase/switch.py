"""Switching the store that takes application writes (4 -> 5, 5 -> 4): a protocol, not a flag flip.

See docs/design.md for the why. Steps, each audited with its duration, all within
``cutover.max_write_pause_s`` from the freeze to the flip:

1. freeze: the phase document gets a freeze (new epoch, same phase);
2. acknowledge: every live client lease acknowledges the freeze epoch (writes drained, new
   ones waiting);
3. fence the old store (MySQL: the fence row; DynamoDB: the fence item), so that no stale
   client can still commit there;
4. drain the old -> new direction up to the fence (4 -> 5: the CDC pipeline through the binlog
   position after the fence; 5 -> 4: the reverse replication through the fence time);
5. open the new store's fence at the new generation and flip the phase (epoch + 1).

An overrun aborts: the old store's fence reopens at a fresh generation (generations are never
reused, so versions stay monotonic), the phase goes back unfrozen, the reason is audited, and
:class:`SwitchAborted` is raised. Nothing was written to the new store; nothing is lost.
The I/O is behind two small Protocols (:class:`Fences`, :class:`Drains`) so the protocol's
logic runs under unit tests with fakes; :mod:`replicator.phase.switch_io` has the real ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from replicator.control import ControlStore, Freeze, HistoryEntry, PhaseState
from replicator.errors import (
    ControlStoreUnavailable,
    EpochConflict,
    ReplicatorError,
    SwitchAborted,
    TransitionError,
)

log = structlog.get_logger("replicator.phase")

LEASE_PREFIX = "client.lease."
PROGRESS_MARKER = "cutover.progress"
#: How long a write of the phase document inside a switch is tried again while the control store
#: does not answer (a Redis restart takes seconds): a switch must never leave the phase frozen.
CAS_RETRY_S = 30.0


def stale_after_s(max_pause_s: float) -> float:
    """How long a freeze can last under a live controller: the pause bound, then an abort's fence
    (up to 30 s) and the phase document's write retries (:data:`CAS_RETRY_S`, twice). A freeze
    older than that was left by a controller that is gone (killed mid-switch)."""
    return max_pause_s + 30.0 + 2 * CAS_RETRY_S


class Fences(Protocol):
    def prepare(self) -> None:
        """Create the fence row and the fence item where missing (both open to MySQL at first)."""

    def fence_mysql(self, writes_to: str, generation: int, timeout_s: float) -> str | None:
        """Set the MySQL fence row; returns ``@@gtid_binlog_pos`` right after (the drain target)."""

    def fence_dynamodb(self, writes_to: str, generation: int) -> None:
        """Set the DynamoDB fence item."""


class Drains(Protocol):
    def pipeline_applied(self, position: str | None, timeout_s: float) -> bool:
        """Has the CDC pipeline (reader + writer) applied through ``position``, within the time?"""

    def reverse_drained(self, since: float, timeout_s: float) -> tuple[bool, str]:
        """Has the reverse replication applied every record up to wall time ``since``, with no
        dead letter outstanding? (ok, why not)"""

    def reverse_healthy(self) -> tuple[bool, str]:
        """Is reverse replication running and free of dead letters? (ok, why not)"""


@dataclass
class SwitchReport:
    from_phase: int
    to_phase: int
    generation: int
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds
    acknowledged: list[str] = field(default_factory=list)
    pause_s: float = 0.0


class SwitchProtocol:
    def __init__(self, store: ControlStore, fences: Fences, drains: Drains, *, max_pause_s: float,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep, poll_s: float = 0.01) -> None:
        self.store = store
        self.fences = fences
        self.drains = drains
        self.max_pause_s = max_pause_s
        self._clock, self._wall, self._sleep, self._poll_s = clock, wall, sleep, poll_s

    # ----------------------------------------------------------------- entry points

    def run(self, target: int, *, actor: str, reason: str) -> SwitchReport:
        current = self.store.get_phase()
        if current.frozen:
            raise TransitionError("a switch of the write target is already in progress "
                                  f"(towards phase {current.freeze.target if current.freeze else '?'}); "
                                  "wait for it, or see `replicator phase status`")
        if (current.phase, target) not in ((4, 5), (5, 4)):
            raise TransitionError(f"the write-target switch goes 4 -> 5 or 5 -> 4, not "
                                  f"{current.phase} -> {target}")
        if target == 4:
            ok, why = self.drains.reverse_healthy()
            if not ok:
                raise TransitionError(f"cannot switch writes back to MySQL: {why}")
        self.fences.prepare()
        return self._switch(current, target, actor=actor, reason=reason)

    def reopen_mysql(self, *, actor: str, reason: str) -> PhaseState:
        """The audited escape out of phase 5 without reverse replication
        (``--discard-phase5-writes-not-in-mysql``): both fences back to MySQL at a new generation,
        no drain. Returns the state to leave phase 5 from."""
        current = self.store.get_phase()
        gen = current.generation + 1
        self.fences.prepare()
        self.fences.fence_dynamodb("mysql", gen)
        self.fences.fence_mysql("mysql", gen, 30.0)
        report = SwitchReport(current.phase, current.phase, gen)
        return self._cas(current, PhaseState(
            phase=current.phase, epoch=current.epoch + 1, updated_at=self._wall(), updated_by=actor,
            reason=f"fences back to MySQL without reverse replication: {reason}", generation=gen), report)

    def repair(self, *, actor: str, reason: str, force: bool = False) -> PhaseState | None:
        """End a switch whose controller is gone: the phase document is frozen and nobody will
        flip or abort it, so every client waits (and then fails) on its writes. Aborts it the way
        the protocol would: both fences to the frozen phase's store at a fresh generation (the
        other store's fence too, in case the controller had opened it just before it died), then
        the phase unfrozen, audited. Nothing was written to the other store (clients write there
        only once the phase document says so). Returns None when nothing is frozen; refuses a
        freeze younger than :func:`stale_after_s` unless ``force`` (its controller may be alive)."""
        current = self.store.get_phase()
        if current.freeze is None:
            return None
        age = self._wall() - current.freeze.since
        bound = stale_after_s(self.max_pause_s)
        if age < bound and not force:
            raise TransitionError(
                f"the switch to phase {current.freeze.target} froze writes {age:.0f} s ago; its controller "
                f"may still finish or abort it (within {bound:.0f} s of the freeze). Wait "
                f"{bound - age:.0f} s, or, if you know the process running it is gone, repeat with --force")
        fresh = current.generation + 2  # the frozen phase's store keeps its parity; never reused
        report = SwitchReport(current.phase, current.phase, fresh)
        self.fences.prepare()
        if current.phase == 4:
            self.fences.fence_dynamodb("mysql", fresh)
            self.fences.fence_mysql("mysql", fresh, 30.0)
        else:
            self.fences.fence_mysql("dynamodb", fresh, 30.0)
            self.fences.fence_dynamodb("dynamodb", fresh)
        why = (f"switch to phase {current.freeze.target} left frozen {age:.0f} s ago by a controller that "
               f"is gone; aborted by repair: {reason}")
        new = self._cas(current, PhaseState(
            phase=current.phase, epoch=current.epoch + 1, updated_at=self._wall(), updated_by=actor,
            reason=why, generation=fresh), report)
        self._progress(current.freeze.target, "repaired", report, self._clock(), why=why)
        log.warning("write_target_switch_repaired", marker="Migration phase", phase=current.phase,
                    abandoned_target=current.freeze.target, frozen_s=round(age, 1), generation=fresh,
                    actor=actor, reason=reason)
        return new

    # ----------------------------------------------------------------- the protocol

    def _switch(self, current: PhaseState, target: int, *, actor: str, reason: str) -> SwitchReport:
        old_gen = current.generation
        new_gen = old_gen + 1
        report = SwitchReport(current.phase, target, new_gen)
        start = self._clock()
        deadline = start + self.max_pause_s

        def step(name: str, t0: float) -> None:
            report.steps[name] = round(self._clock() - t0, 4)
            self._progress(target, name, report, start)

        t0 = self._clock()
        frozen = self._cas(current, PhaseState(
            phase=current.phase, epoch=current.epoch + 1, updated_at=self._wall(), updated_by=actor,
            reason=f"freeze for the switch to phase {target}: {reason}", generation=old_gen,
            freeze=Freeze(target=target, generation=new_gen, since=self._wall())), report)
        step("freeze", t0)
        try:
            t0 = self._clock()
            report.acknowledged = self._await_acks(frozen.epoch, deadline)
            step("acknowledge", t0)
            t0 = self._clock()
            if target == 5:
                position = self.fences.fence_mysql("dynamodb", new_gen, self._left(deadline, "fence MySQL"))
                step("fence_mysql", t0)
                t0 = self._clock()
                if not self.drains.pipeline_applied(position, self._left(deadline, "drain the pipeline")):
                    raise _Overrun(f"the pipeline did not apply through {position} within the pause bound")
                step("drain_pipeline", t0)
                t0 = self._clock()
                self.fences.fence_dynamodb("dynamodb", new_gen)
                step("open_dynamodb", t0)
            else:
                fenced_at = self._wall()
                self.fences.fence_dynamodb("mysql", new_gen)
                step("fence_dynamodb", t0)
                t0 = self._clock()
                budget = self._left(deadline, "drain the reverse path")
                ok, why = self.drains.reverse_drained(fenced_at, budget)
                if not ok:
                    raise _Overrun(why)
                step("drain_reverse", t0)
                t0 = self._clock()
                self.fences.fence_mysql("mysql", new_gen, self._left(deadline, "open MySQL"))
                step("open_mysql", t0)
            # The new store's fence is open: from here the switch completes (one write).
        except (_Overrun, ReplicatorError) as exc:
            return self._abort(frozen, current, target, report, start, actor, str(exc))
        t0 = self._clock()
        report.pause_s = round(t0 - start, 4)  # audited with the flip; the flip's own write adds ms
        self._cas(frozen, PhaseState(
            phase=target, epoch=frozen.epoch + 1, updated_at=self._wall(), updated_by=actor, reason=reason,
            generation=new_gen), report, from_phase=current.phase)
        step("flip", t0)
        report.pause_s = round(self._clock() - start, 4)
        self._progress(target, "done", report, start)
        log.info("write_target_switched", marker="Migration phase changed", from_phase=current.phase,
                 to_phase=target, generation=new_gen, pause_s=report.pause_s, steps=report.steps,
                 clients=len(report.acknowledged))
        return report

    def _abort(self, frozen: PhaseState, current: PhaseState, target: int, report: SwitchReport, start: float,
               actor: str, why: str) -> SwitchReport:
        fresh = current.generation + 2  # never reuse a generation: versions stay monotonic
        try:
            if target == 5:
                self.fences.fence_mysql("mysql", fresh, 30.0)
            else:
                self.fences.fence_dynamodb("dynamodb", fresh)
        except ReplicatorError as exc:
            log.error("switch_abort_fence_failed", error=str(exc))
            raise SwitchAborted(f"switch to phase {target} aborted ({why}) and the old store's fence could "
                                f"not be reopened ({exc}): writes stay paused; rerun `replicator phase "
                                f"set {current.phase}` once the store answers") from exc
        self._cas(frozen, PhaseState(
            phase=current.phase, epoch=frozen.epoch + 1, updated_at=self._wall(), updated_by=actor,
            reason=f"switch to phase {target} aborted: {why}", generation=fresh), report)
        report.pause_s = round(self._clock() - start, 4)
        self._progress(target, "aborted", report, start, why=why)
        log.warning("write_target_switch_aborted", marker="Migration phase", from_phase=current.phase,
                    to_phase=target, reason=why, pause_s=report.pause_s, steps=report.steps)
        raise SwitchAborted(f"switch to phase {target} aborted after {report.pause_s:.2f} s: {why}; the "
                            f"application writes to phase {current.phase}'s store again, nothing was lost")

    # ----------------------------------------------------------------- helpers

    def _left(self, deadline: float, what: str) -> float:
        left = deadline - self._clock()
        if left <= 0:
            raise _Overrun(f"cutover.max_write_pause_s ({self.max_pause_s} s) ran out before the step "
                           f"'{what}'")
        return left

    def _cas(self, current: PhaseState, new: PhaseState, report: SwitchReport,
             from_phase: int | None = None) -> PhaseState:
        details: dict[str, Any] = {"steps": dict(report.steps), "generation": new.generation,
                                   "clients": list(report.acknowledged)}
        if report.pause_s:
            details["pause_s"] = report.pause_s
        if new.freeze is not None:
            details["freeze"] = new.freeze.to_doc()
        entry = HistoryEntry(epoch=new.epoch, at=new.updated_at, actor=new.updated_by,
                             from_phase=current.phase if from_phase is None else from_phase,
                             to_phase=new.phase, reason=new.reason, details=details)
        # A control store that restarts under a switch must not leave the phase frozen for good:
        # the write is tried again (bounded). An attempt whose answer was lost may have landed:
        # the epoch it wrote is then the current one, and it counts as done.
        deadline = self._clock() + CAS_RETRY_S
        attempt = 0
        while True:
            try:
                self.store.compare_and_set(new, entry)
                return new
            except EpochConflict:
                if attempt and self._landed(new):
                    return new
                raise
            except ControlStoreUnavailable as exc:
                attempt += 1
                if self._clock() >= deadline:
                    raise
                log.warning("switch_phase_write_retry", attempt=attempt, error=str(exc), epoch=new.epoch,
                            frozen=new.frozen)
                self._sleep(min(0.2 * attempt, 2.0))

    def _landed(self, new: PhaseState) -> bool:
        try:
            stored = self.store.get_phase()
        except ControlStoreUnavailable:
            return False
        return (stored.epoch, stored.phase, stored.generation, stored.frozen) == (
            new.epoch, new.phase, new.generation, new.frozen)

    def _await_acks(self, epoch: int, deadline: float) -> list[str]:
        while True:
            now = self._wall()
            leases = self.store.list_markers(LEASE_PREFIX)
            live = {k[len(LEASE_PREFIX):]: d for k, d in leases.items()
                    if float(d.get("expires_at", 0)) > now}
            waiting = sorted(k for k, d in live.items() if int(d.get("acked_epoch", 0)) < epoch)
            if not waiting:
                return sorted(live)
            if self._clock() >= deadline:
                raise _Overrun(f"client(s) {waiting[:5]} did not acknowledge the freeze within the pause "
                               "bound")
            self._sleep(self._poll_s)

    def _progress(self, target: int, step: str, report: SwitchReport, start: float, why: str = "") -> None:
        doc = {"target": target, "step": step, "generation": report.generation, "steps": report.steps,
               "clients": report.acknowledged, "pause_so_far_s": round(self._clock() - start, 4),
               "at": self._wall(), "why": why}
        try:
            self.store.put_marker(PROGRESS_MARKER, doc)
        except ReplicatorError as exc:
            log.warning("switch_progress_not_written", error=str(exc))


class _Overrun(Exception):
    pass

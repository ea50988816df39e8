"""The phase controller: the library API applications, the shim and the CLI call.

    with open_phase_controller(settings) as phases:
        phases.get_all_flags()                 # the guide's five flags + epoch and timestamps
        phases.set_migration_phase(2, reason="dual writes on", actor="alice")

Every change is a compare-and-set on ``epoch`` with its history entry in the same atomic write,
logged as ``Migration phase changed`` with from/to/actor/reason.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog

from replicator.control import (
    FLAG_NAMES,
    ControlStore,
    HistoryEntry,
    PhaseState,
    open_control_store,
)
from replicator.errors import ConfigError, GatesNotMet, TransitionError
from replicator.phase.clock import Clock, SystemClock
from replicator.phase.gates import GateResult
from replicator.phase.metrics import PhaseMetrics
from replicator.phase.rules import Direction, Transition, plan_transition
from replicator.phase.switch import SwitchProtocol
from replicator.phase.watcher import PhaseWatcher
from replicator.settings import Settings

log = structlog.get_logger(__name__)



class GateEvaluator(Protocol):
    def check(self, target: int, state: PhaseState | None = None) -> list[GateResult]: ...


@dataclass(frozen=True)
class ChangeResult:
    transition: Transition
    state: PhaseState
    gates: tuple[GateResult, ...] = ()
    forced_gates: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return self.transition.direction is not Direction.NOOP


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid:{os.getuid()}"


def flags_document(state: PhaseState) -> dict[str, Any]:
    """The guide's ``getAllFlags()``: the five flags, plus epoch and who/when/why."""
    return {
        **state.flags(), "epoch": state.epoch, "updated_at": state.updated_at,
        "updated_by": state.updated_by, "reason": state.reason,
    }


class PhaseController:
    def __init__(self, store: ControlStore, gates: GateEvaluator, clock: Clock | None = None,
                 metrics: PhaseMetrics | None = None, switch: SwitchProtocol | None = None) -> None:
        self.store = store
        # The 4 <-> 5 switch of the write target (docs/design.md). Without it (unit tests of the
        # rules and gates), crossing 4 <-> 5 is a plain flag flip.
        self.switch = switch
        self.metrics = metrics or PhaseMetrics()
        self.gates = gates
        self.clock = clock or SystemClock()

    # -- reading
    def get_state(self) -> PhaseState:
        state = self.store.get_phase()
        self.metrics.phase.set(state.phase)
        return state

    def get_all_flags(self) -> dict[str, Any]:
        return flags_document(self.get_state())

    def get_flag(self, name: str) -> bool | int:
        if name not in FLAG_NAMES:
            raise ConfigError(f"unknown flag {name!r}: the flags are {', '.join(FLAG_NAMES)}")
        return self.get_state().flags()[name]

    def check(self, target: int) -> list[GateResult]:
        return self.gates.check(target)

    def history(self) -> list[HistoryEntry]:
        return self.store.history()

    def watch(self, on_change: Callable[[PhaseState], None]) -> PhaseWatcher:
        """A started watcher on this controller's store (give it a store of its own if others wait too)."""
        watcher = PhaseWatcher(self.store, on_change)
        watcher.start()
        return watcher

    # -- changing
    def repair(self, *, reason: str, actor: str | None = None, force: bool = False) -> PhaseState | None:
        """``replicator phase repair``: end a switch left frozen (see :meth:`SwitchProtocol.repair`)."""
        if not reason or not reason.strip():
            raise ConfigError('a reason is required (--reason "..."): it goes to the audit history')
        if self.switch is None:
            raise TransitionError("no write-target switch is configured here: nothing to repair")
        return self.switch.repair(actor=actor or os_user(), reason=reason, force=force)

    def set_migration_phase(
        self, target: int, *, reason: str, actor: str | None = None, force: bool = False,
        discard_phase5_writes_not_in_mysql: bool = False,
        direction: Literal["any", "forward", "rollback"] = "any",
    ) -> ChangeResult:
        """Move to ``target`` under the rules and gates; raises without writing anything otherwise."""
        if not reason or not reason.strip():
            raise ConfigError(
                'a reason is required for every phase change (--reason "..."): it goes to the audit history'
            )
        actor = actor or os_user()
        current = self.store.get_phase()
        if current.freeze is not None:  # a switch runs, or its controller died mid-way
            raise TransitionError(
                f"writes are frozen for a switch to phase {current.freeze.target} (since "
                f"{current.freeze.since:.0f}, epoch {current.epoch}): wait for it to finish, or, if the "
                "process running it is gone, end it with `replicator phase repair --reason ...`; "
                "nothing was changed")
        reverse_ok = (self.switch is not None and current.phase == 5 and target < 5
                      and not discard_phase5_writes_not_in_mysql and self.switch.drains.reverse_healthy()[0])
        transition = plan_transition(
            current.phase, target, discard_phase5_writes=discard_phase5_writes_not_in_mysql,
            reverse_path_healthy=reverse_ok,
        )
        self._check_direction(transition, direction)
        if transition.direction is Direction.NOOP:
            log.info("migration_phase_unchanged", marker="Migration phase unchanged", phase=target,
                     actor=actor, reason=reason, epoch=current.epoch)
            return ChangeResult(transition, current)
        results: list[GateResult] = []
        forced: tuple[str, ...] = ()
        if transition.gated:
            results = self.gates.check(target, current)
            failed = tuple(r.gate for r in results if not r.passed)
            if failed and not force:
                log.warning("migration_phase_change_refused", marker="Migration phase change refused",
                            from_phase=current.phase, to_phase=target, actor=actor, reason=reason,
                            failed_gates=list(failed))
                raise GatesNotMet(gates_message(transition, results), results)
            forced = failed
        if self.switch is not None and {current.phase, target} == {4, 5}:
            return self._switch(current, target, transition, actor, reason, results, forced)
        if self.switch is not None and current.phase == 5:
            if reverse_ok:  # through 4 on the protocol, then on down
                self._switch(current, 4, transition, actor, reason, results, forced)
                return self.set_migration_phase(target, reason=reason, actor=actor, direction="rollback")
            self.switch.reopen_mysql(actor=actor, reason=reason)  # the audited escape: writes back to MySQL
            current = self.store.get_phase()
        now = self.clock.now()
        new = PhaseState(
            phase=target, epoch=current.epoch + 1, updated_at=now, updated_by=actor, reason=reason,
            generation=current.generation,
        )
        entry = HistoryEntry(
            epoch=new.epoch, at=now, actor=actor, from_phase=current.phase, to_phase=target, reason=reason,
            forced_gates=forced, acknowledgements=transition.acknowledgements,
        )
        self.store.compare_and_set(new, entry)
        self.metrics.phase.set(target)
        self.metrics.changes.labels(direction=transition.direction.value).inc()
        log.info(
            "migration_phase_changed", marker="Migration phase changed", from_phase=current.phase,
            to_phase=target, actor=actor, reason=reason,
            epoch=new.epoch, direction=transition.direction.value, forced_gates=list(forced),
            acknowledgements=list(transition.acknowledgements),
        )
        return ChangeResult(transition, new, tuple(results), forced)

    def _switch(self, current: PhaseState, target: int, transition: Transition, actor: str, reason: str,
                results: list[GateResult], forced: tuple[str, ...]) -> ChangeResult:
        assert self.switch is not None
        report = self.switch.run(target, actor=actor, reason=reason)
        state = self.store.get_phase()
        self.metrics.phase.set(state.phase)
        self.metrics.changes.labels(direction=transition.direction.value).inc()
        log.info("migration_phase_changed", marker="Migration phase changed", from_phase=current.phase,
                 to_phase=state.phase, actor=actor, reason=reason, epoch=state.epoch,
                 direction=transition.direction.value, forced_gates=list(forced), pause_s=report.pause_s,
                 generation=state.generation)
        return ChangeResult(Transition(current.phase, state.phase, transition.direction,
                                       transition.acknowledgements), state, tuple(results), forced)

    @staticmethod
    def _check_direction(t: Transition, direction: str) -> None:
        if direction == "forward" and t.direction is Direction.ROLLBACK:
            raise TransitionError(
                f"phase {t.from_phase} -> {t.to_phase} goes backward: use "
                f"`replicator phase rollback {t.to_phase} --reason ...`"
            )
        if direction == "rollback" and t.direction is Direction.FORWARD:
            raise TransitionError(
                f"phase {t.from_phase} -> {t.to_phase} goes forward: use "
                f"`replicator phase set {t.to_phase} --reason ...`"
            )


@contextmanager
def open_phase_controller(settings: Settings, clock: Clock | None = None) -> Iterator[PhaseController]:
    """A controller on the configured store with the real gate probes (DynamoDB, Kafka)."""
    from replicator.phase.probes import GateChecker
    from replicator.phase.switch import SwitchProtocol
    from replicator.phase.switch_io import StoreDrains, StoreFences

    clock = clock or SystemClock()
    with open_control_store(settings) as store:
        switch = SwitchProtocol(store, StoreFences(settings), StoreDrains(settings, store),
                                max_pause_s=settings.cutover.max_write_pause_s)
        yield PhaseController(store, GateChecker(settings, store, clock), clock, switch=switch)


# -- module-level conveniences mirroring the guide's FeatureFlagService

def set_migration_phase(
    n: int, *, reason: str, settings: Settings, actor: str | None = None, force: bool = False,
    discard_phase5_writes_not_in_mysql: bool = False,
) -> ChangeResult:
    with open_phase_controller(settings) as phases:
        return phases.set_migration_phase(
            n, reason=reason, actor=actor, force=force,
            discard_phase5_writes_not_in_mysql=discard_phase5_writes_not_in_mysql,
        )


def get_all_flags(store: ControlStore) -> dict[str, Any]:
    return flags_document(store.get_phase())


def get_flag(store: ControlStore, name: str) -> bool | int:
    if name not in FLAG_NAMES:
        raise ConfigError(f"unknown flag {name!r}: the flags are {', '.join(FLAG_NAMES)}")
    return store.get_phase().flags()[name]


def gates_message(transition: Transition, results: list[GateResult]) -> str:
    failed = [r for r in results if not r.passed]
    lines = "\n  ".join(f"{r.gate}: {r.measured} (needs {r.threshold}) -- {r.detail}" for r in failed)
    return (
        f"phase {transition.from_phase} -> {transition.to_phase}: {len(failed)} gate(s) not met; "
        f"nothing was changed:\n  {lines}\n"
        "Wait until they pass (`replicator phase check N`), or pass --force to override (audited)."
    )

"""The controller over an in-memory store: rules, gates, force, audit, logging, no half-writes."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from replicator.control import FLAG_NAMES, EpochConflict, HistoryEntry, PhaseState
from replicator.control.memory import MemoryControlStore
from replicator.errors import ConfigError, TransitionError
from replicator.phase import FixedClock, GatesNotMet, Phase5RollbackRefused, PhaseController, get_all_flags
from replicator.phase.gates import GateResult

NOW = 1_800_000_000.0


class FakeGates:
    def __init__(self) -> None:
        self.failing: set[str] = set()
        self.asked: list[int] = []

    def check(self, target: int, state: PhaseState | None = None) -> list[GateResult]:
        self.asked.append(target)
        return [GateResult(g, g not in self.failing, "m", "t", None) for g in ("gate_a", "gate_b")]


@pytest.fixture()
def store() -> MemoryControlStore:
    return MemoryControlStore()


@pytest.fixture()
def fake_gates() -> FakeGates:
    return FakeGates()


@pytest.fixture()
def ctl(store: MemoryControlStore, fake_gates: FakeGates) -> PhaseController:
    return PhaseController(store, fake_gates, FixedClock(NOW))


def walk(ctl: PhaseController, to: int) -> None:
    for n in range(ctl.get_state().phase + 1, to + 1):
        ctl.set_migration_phase(n, reason=f"to {n}", actor="ops")


def test_forward_change_stores_the_phase_with_who_when_why(ctl: PhaseController) -> None:
    r = ctl.set_migration_phase(2, reason="start dual writes", actor="alice")
    assert r.changed
    assert ctl.get_state() == PhaseState(2, 1, NOW, "alice", "start dual writes")


def test_get_all_flags_returns_the_five_flags_epoch_and_timestamps(ctl: PhaseController) -> None:
    walk(ctl, 3)
    flags = ctl.get_all_flags()
    assert set(flags) == {*FLAG_NAMES, "epoch", "updated_at", "updated_by", "reason"}
    assert flags["dual_read_enabled"] is True and flags["epoch"] == 2
    assert get_all_flags(ctl.store) == flags


def test_get_flag_reads_one_flag_and_rejects_an_unknown_name(ctl: PhaseController) -> None:
    walk(ctl, 4)
    assert ctl.get_flag("read_from_dynamodb") is True
    with pytest.raises(ConfigError, match="unknown flag 'read_from_mysql'"):
        ctl.get_flag("read_from_mysql")


def test_a_failed_gate_refuses_the_change_and_writes_nothing(
    ctl: PhaseController, fake_gates: FakeGates,
) -> None:
    fake_gates.failing = {"gate_b"}
    with pytest.raises(GatesNotMet, match="gate_b") as err:
        ctl.set_migration_phase(2, reason="r", actor="a")
    assert err.value.exit_code == 1
    assert ctl.get_state().epoch == 0 and ctl.history() == []


def test_force_goes_past_a_failed_gate_and_records_it(ctl: PhaseController, fake_gates: FakeGates) -> None:
    fake_gates.failing = {"gate_b"}
    r = ctl.set_migration_phase(2, reason="r", actor="a", force=True)
    assert r.forced_gates == ("gate_b",)
    assert ctl.history()[-1].forced_gates == ("gate_b",)


def test_rollback_is_not_gated(ctl: PhaseController, fake_gates: FakeGates) -> None:
    walk(ctl, 4)
    fake_gates.failing = {"gate_a", "gate_b"}
    fake_gates.asked.clear()
    ctl.set_migration_phase(1, reason="emergency", actor="oncall")
    assert ctl.get_state().phase == 1 and fake_gates.asked == []


def test_the_same_phase_again_changes_nothing(ctl: PhaseController) -> None:
    walk(ctl, 2)
    r = ctl.set_migration_phase(2, reason="again", actor="a")
    assert not r.changed and ctl.get_state().epoch == 1 and len(ctl.history()) == 1


def test_a_skipped_step_is_refused(ctl: PhaseController) -> None:
    with pytest.raises(TransitionError, match="skips a step"):
        ctl.set_migration_phase(3, reason="r", actor="a")
    assert ctl.get_state().epoch == 0


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_missing_reason_is_refused(ctl: PhaseController, reason: str) -> None:
    with pytest.raises(ConfigError, match="reason is required"):
        ctl.set_migration_phase(2, reason=reason, actor="a")


def test_leaving_phase_5_is_refused_without_the_acknowledgement(ctl: PhaseController) -> None:
    walk(ctl, 5)
    with pytest.raises(Phase5RollbackRefused, match="NOT in MySQL"):
        ctl.set_migration_phase(4, reason="r", actor="a")
    assert ctl.get_state().phase == 5


def test_leaving_phase_5_with_the_acknowledgement_is_audited(ctl: PhaseController) -> None:
    walk(ctl, 5)
    ctl.set_migration_phase(1, reason="abort", actor="a", discard_phase5_writes_not_in_mysql=True)
    assert ctl.history()[-1].acknowledgements == ("discard-phase5-writes-not-in-mysql",)


def test_direction_forward_refuses_a_rollback_and_vice_versa(ctl: PhaseController) -> None:
    walk(ctl, 3)
    with pytest.raises(TransitionError, match="phase rollback 2"):
        ctl.set_migration_phase(2, reason="r", actor="a", direction="forward")
    with pytest.raises(TransitionError, match="phase set 4"):
        ctl.set_migration_phase(4, reason="r", actor="a", direction="rollback")


def test_every_change_logs_migration_phase_with_from_to_actor_reason(ctl: PhaseController) -> None:
    with capture_logs() as logs:
        ctl.set_migration_phase(2, reason="go", actor="alice")
    changed = [e for e in logs if "Migration phase" in e.get("marker", "")]
    assert len(changed) == 1
    assert {k: changed[0][k] for k in ("from_phase", "to_phase", "actor", "reason")} == {
        "from_phase": 1, "to_phase": 2, "actor": "alice", "reason": "go"}


def test_the_actor_defaults_to_the_os_user(ctl: PhaseController, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("getpass.getuser", lambda: "os-user")
    ctl.set_migration_phase(2, reason="r")
    assert ctl.history()[0].actor == "os-user"


class RacingStore(MemoryControlStore):
    """Another operator's change lands between our read and our write."""

    def compare_and_set(self, new: PhaseState, entry: HistoryEntry) -> None:
        other = PhaseState(phase=1, epoch=new.epoch, updated_by="bob", reason="emergency")
        super().compare_and_set(other, entry)
        super().compare_and_set(new, entry)


def test_a_concurrent_change_makes_ours_fail_with_a_conflict(fake_gates: FakeGates) -> None:
    store = RacingStore()
    ctl = PhaseController(store, fake_gates, FixedClock(NOW))
    with pytest.raises(EpochConflict, match="another operator"):
        ctl.set_migration_phase(2, reason="r", actor="alice")
    assert store.get_phase().updated_by == "bob"


def test_history_is_append_only_and_in_order(ctl: PhaseController) -> None:
    walk(ctl, 4)
    ctl.set_migration_phase(2, reason="back", actor="x")
    h = ctl.history()
    assert [(e.epoch, e.from_phase, e.to_phase) for e in h] == [(1, 1, 2), (2, 2, 3), (3, 3, 4), (4, 4, 2)]


def test_no_phase_change_while_a_switch_holds_writes_frozen(store: MemoryControlStore,
                                                            fake_gates: FakeGates) -> None:
    # `phase rollback 3` on a phase 4 left frozen would unfreeze it with MySQL perhaps still fenced
    # to DynamoDB: every application write would fail. It is refused, naming `phase repair`.
    from replicator.control import Freeze, HistoryEntry, PhaseState

    ctl = PhaseController(store, fake_gates, FixedClock(NOW))
    walk(ctl, 4)
    cur = store.get_phase()
    store.compare_and_set(PhaseState(phase=4, epoch=cur.epoch + 1, freeze=Freeze(5, 1, NOW)),
                          HistoryEntry(epoch=cur.epoch + 1, at=NOW, actor="t", from_phase=4, to_phase=4,
                                       reason="freeze"))
    with pytest.raises(TransitionError, match="phase repair"):
        ctl.set_migration_phase(3, reason="get me out", actor="ops")
    assert store.get_phase().frozen and store.get_phase().phase == 4

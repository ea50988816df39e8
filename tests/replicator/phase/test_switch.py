"""The write-target switch protocol with in-memory fences and drains: order, bounds, aborts."""

from __future__ import annotations

import time

import pytest

from replicator.control import HistoryEntry, PhaseState
from replicator.errors import ControlStoreUnavailable, SwitchAborted, TransitionError
from replicator.phase.switch import LEASE_PREFIX, PROGRESS_MARKER, SwitchProtocol
from replicator.testing import MemoryControlStore


class Fences:
    def __init__(self, log: list[str], slow_mysql_s: float = 0.0) -> None:
        self.log = log
        self.mysql = ("mysql", 0)
        self.dynamodb = ("mysql", 0)
        self.slow_mysql_s = slow_mysql_s

    def prepare(self) -> None:
        self.log.append("prepare")

    def fence_mysql(self, writes_to: str, generation: int, timeout_s: float) -> str | None:
        time.sleep(self.slow_mysql_s)
        self.mysql = (writes_to, generation)
        self.log.append(f"mysql={writes_to}@{generation}")
        return "0-1-100"

    def fence_dynamodb(self, writes_to: str, generation: int) -> None:
        self.dynamodb = (writes_to, generation)
        self.log.append(f"dynamodb={writes_to}@{generation}")


class Drains:
    def __init__(self, log: list[str], applied: bool = True, reverse_ok: bool = True) -> None:
        self.log, self.applied, self.reverse_ok = log, applied, reverse_ok

    def pipeline_applied(self, position: str | None, timeout_s: float) -> bool:
        self.log.append(f"drain pipeline to {position}")
        return self.applied

    def reverse_drained(self, since: float, timeout_s: float) -> tuple[bool, str]:
        self.log.append("drain reverse")
        return (True, "") if self.reverse_ok else (False, "2 dead letters: id=7, id=9")

    def reverse_healthy(self) -> tuple[bool, str]:
        return (True, "") if self.reverse_ok else (False, "no reverse replication")


def _store(phase: int, generation: int) -> MemoryControlStore:
    store = MemoryControlStore()
    store.compare_and_set(PhaseState(phase=phase, epoch=1, generation=generation),
                          HistoryEntry(epoch=1, at=0.0, actor="t", from_phase=1, to_phase=phase, reason="t"))
    return store


def _lease(store: MemoryControlStore, name: str, acked: int, ttl_s: float = 30.0) -> None:
    store.put_marker(LEASE_PREFIX + name, {"expires_at": time.time() + ttl_s, "acked_epoch": acked})


def test_4_to_5_freezes_fences_mysql_drains_then_opens_dynamodb_at_the_next_generation() -> None:
    log: list[str] = []
    store = _store(4, 2)
    fences = Fences(log)
    report = SwitchProtocol(store, fences, Drains(log), max_pause_s=2.0).run(5, actor="op", reason="go")
    assert log == ["prepare", "mysql=dynamodb@3", "drain pipeline to 0-1-100", "dynamodb=dynamodb@3"]
    state = store.get_phase()
    assert (state.phase, state.generation, state.freeze) == (5, 3, None)
    history = store.history()
    assert [(h.from_phase, h.to_phase) for h in history[-2:]] == [(4, 4), (4, 5)]
    assert history[-2].details["freeze"]["target"] == 5
    assert set(history[-1].details["steps"]) >= {"freeze", "acknowledge", "fence_mysql", "drain_pipeline"}
    assert report.pause_s > 0
    assert store.get_marker(PROGRESS_MARKER)["step"] == "done"


def test_5_to_4_fences_dynamodb_drains_the_reverse_path_then_opens_mysql() -> None:
    log: list[str] = []
    store = _store(5, 3)
    SwitchProtocol(store, Fences(log), Drains(log), max_pause_s=2.0).run(4, actor="op", reason="back")
    assert log == ["prepare", "dynamodb=mysql@4", "drain reverse", "mysql=mysql@4"]
    assert (store.get_phase().phase, store.get_phase().generation) == (4, 4)


def test_the_protocol_waits_for_every_live_lease_to_acknowledge_the_freeze() -> None:
    log: list[str] = []
    store = _store(4, 0)
    _lease(store, "late", acked=0)
    _lease(store, "gone", acked=0, ttl_s=-1)  # lapsed: not waited for

    protocol = SwitchProtocol(store, Fences(log), Drains(log), max_pause_s=2.0,
                              sleep=lambda s: _lease(store, "late", acked=store.get_phase().epoch))
    report = protocol.run(5, actor="op", reason="go")
    assert report.acknowledged == ["late"]


def test_a_client_that_never_acknowledges_aborts_the_switch_and_nothing_opens() -> None:
    log: list[str] = []
    store = _store(4, 0)
    _lease(store, "stuck", acked=0)
    fences = Fences(log)
    with pytest.raises(SwitchAborted, match="stuck"):
        SwitchProtocol(store, fences, Drains(log), max_pause_s=0.2).run(5, actor="op", reason="go")
    state = store.get_phase()
    assert (state.phase, state.freeze) == (4, None)
    assert state.generation == 2  # a fresh MySQL generation: 1 is never used
    assert fences.dynamodb == ("mysql", 0)  # DynamoDB was never opened
    assert "aborted" in store.history()[-1].reason


def test_an_overrun_drain_aborts_back_to_an_unfrozen_phase_4_with_mysql_reopened() -> None:
    log: list[str] = []
    store = _store(4, 0)
    fences = Fences(log)
    with pytest.raises(SwitchAborted, match="did not apply"):
        protocol = SwitchProtocol(store, fences, Drains(log, applied=False), max_pause_s=2.0)
        protocol.run(5, actor="op", reason="go")
    assert fences.mysql == ("mysql", 2)
    assert fences.dynamodb == ("mysql", 0)
    assert (store.get_phase().phase, store.get_phase().frozen) == (4, False)


def test_a_reverse_dead_letter_refuses_the_way_back_naming_the_keys() -> None:
    log: list[str] = []
    store = _store(5, 3)
    with pytest.raises(TransitionError, match="no reverse replication"):
        SwitchProtocol(store, Fences(log), Drains(log, reverse_ok=False), max_pause_s=2.0).run(
            4, actor="op", reason="back")
    assert store.get_phase().phase == 5 and log == []


def test_a_second_switch_is_refused_while_one_is_in_progress() -> None:
    store = _store(4, 0)
    cur = store.get_phase()
    from replicator.control import Freeze

    store.compare_and_set(PhaseState(phase=4, epoch=cur.epoch + 1, freeze=Freeze(5, 1, 0.0)),
                          HistoryEntry(epoch=cur.epoch + 1, at=0, actor="t", from_phase=4, to_phase=4,
                                       reason="t"))
    with pytest.raises(TransitionError, match="already in progress"):
        SwitchProtocol(store, Fences([]), Drains([]), max_pause_s=1.0).run(5, actor="op", reason="go")



class RestartingStore(MemoryControlStore):
    """A control store whose phase writes fail while it 'restarts': the writes after the first
    ``healthy_writes`` fail ``outages`` times; with ``lose_answer`` the first failing write lands
    and only its answer is lost."""

    def __init__(self, healthy_writes: int, outages: int, *, lose_answer: bool = False) -> None:
        super().__init__()
        self.healthy, self.outages, self.lose_answer = healthy_writes, outages, lose_answer

    def compare_and_set(self, new: PhaseState, entry: HistoryEntry) -> None:
        if self.healthy > 0:
            self.healthy -= 1
            return super().compare_and_set(new, entry)
        if self.outages > 0:
            self.outages -= 1
            if self.lose_answer:
                self.lose_answer = False
                super().compare_and_set(new, entry)
            raise ControlStoreUnavailable("Redis restarting: Error 111 connecting")
        return super().compare_and_set(new, entry)


def test_a_control_store_restart_during_an_abort_does_not_leave_the_phase_frozen() -> None:
    log: list[str] = []
    store = RestartingStore(healthy_writes=2, outages=3)  # the set-up and the freeze land
    store.compare_and_set(PhaseState(phase=4, epoch=1, generation=0),
                          HistoryEntry(epoch=1, at=0.0, actor="t", from_phase=1, to_phase=4, reason="t"))
    protocol = SwitchProtocol(store, Fences(log), Drains(log, applied=False), max_pause_s=2.0,
                              sleep=lambda _s: None)
    with pytest.raises(SwitchAborted, match="did not apply"):
        protocol.run(5, actor="op", reason="go")
    state = store.get_phase()
    assert (state.phase, state.frozen, state.generation) == (4, False, 2)
    assert store.outages == 0


def test_a_flip_whose_answer_was_lost_counts_as_done() -> None:
    log: list[str] = []
    store = RestartingStore(healthy_writes=2, outages=1, lose_answer=True)
    store.compare_and_set(PhaseState(phase=4, epoch=1, generation=0),
                          HistoryEntry(epoch=1, at=0.0, actor="t", from_phase=1, to_phase=4, reason="t"))
    report = SwitchProtocol(store, Fences(log), Drains(log), max_pause_s=2.0,
                            sleep=lambda _s: None).run(5, actor="op", reason="go")
    state = store.get_phase()
    assert (state.phase, state.frozen, state.generation, report.generation) == (5, False, 1, 1)


def _left_frozen(phase: int, generation: int, since: float) -> MemoryControlStore:
    """The control store as a controller killed mid-switch leaves it: frozen, nobody to flip it."""
    from replicator.control import Freeze

    store = _store(phase, generation)
    cur = store.get_phase()
    store.compare_and_set(PhaseState(phase=phase, epoch=cur.epoch + 1, generation=generation,
                                     freeze=Freeze(9 - phase, generation + 1, since)),
                          HistoryEntry(epoch=cur.epoch + 1, at=since, actor="t", from_phase=phase,
                                       to_phase=phase, reason="freeze"))
    return store


def test_a_switch_to_5_left_frozen_by_a_dead_controller_is_repaired_back_to_mysql() -> None:
    # Killed after it fenced MySQL and opened DynamoDB, before the flip: both must go back.
    log: list[str] = []
    store, fences = _left_frozen(4, 2, since=time.time() - 500), Fences(log)
    fences.mysql, fences.dynamodb = ("dynamodb", 3), ("dynamodb", 3)
    state = SwitchProtocol(store, fences, Drains(log), max_pause_s=10.0).repair(actor="op", reason="killed")
    assert state is not None and (state.phase, state.frozen, state.generation) == (4, False, 4)
    assert store.get_phase() == state
    assert fences.mysql == ("mysql", 4) and fences.dynamodb == ("mysql", 4)
    assert "left frozen" in store.history()[-1].reason
    assert store.get_marker(PROGRESS_MARKER)["step"] == "repaired"


def test_a_switch_to_4_left_frozen_is_repaired_back_to_dynamodb_with_mysql_fenced_again() -> None:
    log: list[str] = []
    store, fences = _left_frozen(5, 3, since=time.time() - 500), Fences(log)
    fences.mysql, fences.dynamodb = ("mysql", 4), ("mysql", 4)  # killed after it opened MySQL
    state = SwitchProtocol(store, fences, Drains(log), max_pause_s=10.0).repair(actor="op", reason="killed")
    assert state is not None and (state.phase, state.frozen, state.generation) == (5, False, 5)
    assert fences.mysql == ("dynamodb", 5) and fences.dynamodb == ("dynamodb", 5)


def test_a_recent_freeze_is_not_repaired_without_force_and_nothing_frozen_is_a_no_op() -> None:
    log: list[str] = []
    store, fences = _left_frozen(4, 2, since=time.time() - 5), Fences(log)
    switch = SwitchProtocol(store, fences, Drains(log), max_pause_s=10.0)
    with pytest.raises(TransitionError, match="--force"):
        switch.repair(actor="op", reason="too soon")
    assert store.get_phase().frozen and log == []
    assert switch.repair(actor="op", reason="sure", force=True) is not None
    assert switch.repair(actor="op", reason="again") is None

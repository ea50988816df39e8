"""The client's write gate during a switch of the write target (pure logic, threads, no stack)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from replicator.client.lease import WriteGate
from replicator.control import Freeze, PhaseState
from replicator.errors import WriteFrozenError


class FakeLease:
    def __init__(self) -> None:
        self.acked: list[int] = []
        self.ok = True

    def valid(self) -> bool:
        return self.ok

    def ack(self, epoch: int, phase: int) -> None:
        self.acked.append(epoch)


def gate(lease: FakeLease, max_pause_s: float = 0.2, grace_s: float = 0.3) -> WriteGate:
    fake: Any = lease  # the gate needs only valid() and ack() of its Lease
    g = WriteGate(fake, max_pause_s, abort_grace_s=grace_s)
    g.update(PhaseState(phase=4, epoch=1))
    return g


def frozen(epoch: int = 2) -> PhaseState:
    return PhaseState(phase=4, epoch=epoch, freeze=Freeze(target=5, generation=1, since=time.time()))


def later(seconds: float, fn: Any) -> threading.Timer:
    t = threading.Timer(seconds, fn)
    t.start()
    return t


def test_a_write_arriving_in_a_freeze_waits_for_the_flip_and_runs_in_the_new_phase() -> None:
    g = gate(FakeLease())
    g.update(frozen())
    later(0.05, lambda: g.update(PhaseState(phase=5, epoch=3, generation=1)))
    assert g.enter().phase == 5
    g.leave()


def test_a_write_outlives_the_pause_bound_when_the_switch_aborts_just_after_it() -> None:
    # The controller aborts once max_write_pause_s ran out; the unfreeze reaches the client a
    # moment later. The waiting write must see it, not fail at the bound.
    g = gate(FakeLease(), max_pause_s=0.1, grace_s=0.5)
    g.update(frozen())
    later(0.2, lambda: g.update(PhaseState(phase=4, epoch=3, generation=2)))
    state = g.enter()
    assert state.phase == 4 and state.freeze is None
    g.leave()


def test_a_freeze_that_neither_flips_nor_aborts_fails_the_write_saying_what_to_check() -> None:
    g = gate(FakeLease(), max_pause_s=0.05, grace_s=0.05)
    g.update(frozen())
    with pytest.raises(WriteFrozenError, match="phase status"):
        g.enter()


def test_the_freeze_is_acknowledged_once_the_writes_in_flight_are_done() -> None:
    lease = FakeLease()
    g = gate(lease, max_pause_s=2.0)
    g.enter()  # a write in flight when the freeze arrives
    g.update(frozen(epoch=2))
    time.sleep(0.05)
    assert lease.acked == []
    g.leave()
    deadline = time.monotonic() + 2
    while not lease.acked:
        assert time.monotonic() < deadline, "the freeze was never acknowledged"
        time.sleep(0.01)
    assert lease.acked == [2]


def test_a_lapsed_lease_refuses_the_write() -> None:
    lease = FakeLease()
    g = gate(lease)
    lease.ok = False
    with pytest.raises(WriteFrozenError, match="lease"):
        g.enter()

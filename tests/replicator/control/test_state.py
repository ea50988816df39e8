"""The phase document and counter buckets: pure values."""

from __future__ import annotations

import pytest

from replicator.control import FLAG_NAMES, HistoryEntry, PhaseState, flags_for_phase
from replicator.control.state import bucket_of, buckets_between

GUIDE = {  # DESIGN §1, column by column
    1: (1, False, False, False, False),
    2: (2, True, False, False, False),
    3: (3, True, True, False, True),
    4: (4, True, False, True, False),
    5: (5, False, False, True, False),
}


@pytest.mark.parametrize("phase", sorted(GUIDE))
def test_flags_of_each_phase_are_the_guides(phase: int) -> None:
    assert flags_for_phase(phase) == dict(zip(FLAG_NAMES, GUIDE[phase], strict=True))


@pytest.mark.parametrize("phase", sorted(GUIDE))
def test_phase_state_properties_match_flags_for_phase(phase: int) -> None:
    s = PhaseState(phase=phase, epoch=3)
    assert {n: getattr(s, n) for n in FLAG_NAMES} == flags_for_phase(phase)


@pytest.mark.parametrize("bad", [0, 6, -1])
def test_a_phase_outside_1_to_5_is_rejected(bad: int) -> None:
    with pytest.raises(ValueError, match="phase must be 1-5"):
        PhaseState(phase=bad)


def test_phase_document_round_trips_and_carries_the_flags() -> None:
    s = PhaseState(phase=3, epoch=7, updated_at=12.5, updated_by="alice", reason="soak done")
    doc = s.to_doc()
    assert doc["validation_enabled"] is True and doc["epoch"] == 7
    assert PhaseState.from_doc(doc) == s


def test_history_entry_round_trips() -> None:
    h = HistoryEntry(epoch=2, at=1.0, actor="bob", from_phase=2, to_phase=3, reason="r",
                     forced_gates=("soak_time",), acknowledgements=("x",))
    assert HistoryEntry.from_doc(h.to_doc()) == h


def test_buckets_are_whole_minutes_including_both_ends() -> None:
    assert bucket_of(119.999) == 1 and bucket_of(120.0) == 2
    assert list(buckets_between(61, 180)) == [1, 2, 3]
    assert list(buckets_between(10, 5)) == []

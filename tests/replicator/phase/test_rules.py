"""Transition rules: one step forward, any step back, same phase no-op, phase 5 guarded."""

from __future__ import annotations

import pytest

from replicator.errors import TransitionError
from replicator.phase.rules import (
    DISCARD_PHASE5_ACK,
    DISCARD_PHASE5_FLAG,
    Direction,
    Phase5RollbackRefused,
    plan_transition,
)


@pytest.mark.parametrize("current", [1, 2, 3, 4])
def test_one_step_forward_is_a_gated_forward_move(current: int) -> None:
    t = plan_transition(current, current + 1)
    assert t.direction is Direction.FORWARD and t.gated


@pytest.mark.parametrize(("current", "target"), [(1, 3), (1, 5), (2, 4), (3, 5)])
def test_skipping_a_step_forward_is_refused(current: int, target: int) -> None:
    with pytest.raises(TransitionError, match="skips a step"):
        plan_transition(current, target)


@pytest.mark.parametrize(("current", "target"), [(4, 1), (4, 3), (3, 1), (2, 1)])
def test_rollback_to_any_lower_phase_is_allowed_and_not_gated(current: int, target: int) -> None:
    t = plan_transition(current, target)
    assert t.direction is Direction.ROLLBACK and not t.gated


@pytest.mark.parametrize("phase", [1, 2, 3, 4, 5])
def test_the_same_phase_again_is_a_no_op(phase: int) -> None:
    assert plan_transition(phase, phase).direction is Direction.NOOP


@pytest.mark.parametrize("target", [0, 6, -2])
def test_a_target_outside_1_to_5_is_refused(target: int) -> None:
    with pytest.raises(TransitionError, match="from 1 to 5"):
        plan_transition(2, target)


@pytest.mark.parametrize("target", [4, 1])
def test_leaving_phase_5_is_refused_saying_phase_5_writes_are_not_in_mysql(target: int) -> None:
    with pytest.raises(Phase5RollbackRefused) as err:
        plan_transition(5, target)
    assert "writes made in phase 5 are NOT in MySQL" in str(err.value)
    assert DISCARD_PHASE5_FLAG in str(err.value)


def test_leaving_phase_5_with_the_acknowledgement_is_recorded() -> None:
    t = plan_transition(5, 4, discard_phase5_writes=True)
    assert t.direction is Direction.ROLLBACK and t.acknowledgements == (DISCARD_PHASE5_ACK,)


def test_leaving_phase_5_needs_no_acknowledgement_when_a_reverse_path_is_healthy() -> None:
    t = plan_transition(5, 4, reverse_path_healthy=True)
    assert t.direction is Direction.ROLLBACK and t.acknowledgements == ()

"""The transition rules of the five phases: pure, no I/O.

- forward only one step at a time (1->2->3->4->5), each gated;
- backward to any lower phase at any time (the guide's emergency rollback);
- the same phase again is a no-op;
- backward from 5 refuses unless a reverse path (DynamoDB -> MySQL) is healthy or the operator
  acknowledges that the writes made in phase 5 are not in MySQL (DESIGN §4 invariant 7).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from replicator.control.state import MAX_PHASE, MIN_PHASE, PHASE_NAMES
from replicator.errors import Phase5RollbackRefused, TransitionError

DISCARD_PHASE5_FLAG = "--discard-phase5-writes-not-in-mysql"
DISCARD_PHASE5_ACK = "discard-phase5-writes-not-in-mysql"


class Direction(Enum):
    NOOP = "noop"
    FORWARD = "forward"
    ROLLBACK = "rollback"


@dataclass(frozen=True)
class Transition:
    from_phase: int
    to_phase: int
    direction: Direction
    acknowledgements: tuple[str, ...] = ()

    @property
    def gated(self) -> bool:
        return self.direction is Direction.FORWARD


def check_phase_number(n: int) -> None:
    if not MIN_PHASE <= n <= MAX_PHASE:
        raise TransitionError(
            f"phase must be a number from {MIN_PHASE} to {MAX_PHASE} "
            f"({', '.join(f'{k} {v}' for k, v in PHASE_NAMES.items())}), got {n}"
        )


def plan_transition(
    current: int, target: int, *, discard_phase5_writes: bool = False, reverse_path_healthy: bool = False,
) -> Transition:
    """Decide what moving from ``current`` to ``target`` is, or raise :class:`TransitionError`."""
    check_phase_number(target)
    check_phase_number(current)
    if target == current:
        return Transition(current, target, Direction.NOOP)
    if target > current:
        if target != current + 1:
            raise TransitionError(
                f"phase {current} -> {target} skips a step: forward moves go one phase at a time "
                f"(next: {current + 1} {PHASE_NAMES[current + 1]}), each gated by its success criteria"
            )
        return Transition(current, target, Direction.FORWARD)
    if current == MAX_PHASE and not reverse_path_healthy:
        if not discard_phase5_writes:
            raise Phase5RollbackRefused(
                f"refusing to roll back from phase 5 to {target}: in phase 5 the application writes to "
                "DynamoDB only and no reverse replication (DynamoDB -> MySQL) is running, so the writes "
                "made in phase 5 are NOT in MySQL; after this rollback the application would read MySQL "
                "and those writes would be lost from its view. To accept that loss, repeat with "
                f"{DISCARD_PHASE5_FLAG}"
            )
        return Transition(current, target, Direction.ROLLBACK, (DISCARD_PHASE5_ACK,))
    return Transition(current, target, Direction.ROLLBACK)

"""The five migration phases as a gated, audited state machine.

- :mod:`rules`: which transitions are allowed (pure);
- :mod:`gates`: the success criteria as arithmetic on measured values (pure);
- :mod:`probes`: the measurements (control store, DynamoDB, Kafka) behind Protocols;
- :mod:`controller`: the library API (``set_migration_phase``, ``get_all_flags``, ``get_flag``);
- :mod:`watcher`: change notification within a second.
"""

from __future__ import annotations

from replicator.errors import GatesNotMet, Phase5RollbackRefused
from replicator.phase.clock import Clock, FixedClock, SystemClock
from replicator.phase.controller import (
    ChangeResult,
    PhaseController,
    get_all_flags,
    get_flag,
    open_phase_controller,
    set_migration_phase,
)
from replicator.phase.gates import GateResult
from replicator.phase.rules import DISCARD_PHASE5_FLAG
from replicator.phase.watcher import PhaseWatcher

__all__ = [
    "DISCARD_PHASE5_FLAG",
    "ChangeResult",
    "Clock",
    "FixedClock",
    "GateResult",
    "GatesNotMet",
    "Phase5RollbackRefused",
    "PhaseController",
    "PhaseWatcher",
    "SystemClock",
    "get_all_flags",
    "get_flag",
    "open_phase_controller",
    "set_migration_phase",
]

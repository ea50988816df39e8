"""Whether a CDC consumer of the table topics runs in the phase in force.

The writer and the stream validator consume the table topics only while the pipeline
replicates to DynamoDB (``dual_write_enabled``: phases 2-4). :class:`PhaseFollower` re-reads the
phase every ``refresh_s`` (keeping the last one while the control store is unreachable, which
makes the process not ready), and pauses or resumes the consumer when it changes.
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog

from replicator.control.base import ControlStore
from replicator.control.state import PhaseState
from replicator.errors import ControlStoreUnavailable
from replicator.metrics import Health

log = structlog.get_logger("replicator.control")


class Pausable(Protocol):
    def pause_all(self) -> None: ...
    def resume_all(self) -> None: ...


class PhaseFollower:
    def __init__(self, control: ControlStore, consumer: Pausable, paused_gauge: Any, *, refresh_s: float,
                 role: str, pause_reason: str) -> None:
        self.control, self.consumer, self.paused_gauge = control, consumer, paused_gauge
        self.refresh_s, self.role, self.pause_reason = refresh_s, role, pause_reason
        self.phase: PhaseState | None = None
        self.paused = False
        self._read_at = 0.0

    def running(self, now: float, health: Health | None = None) -> bool:
        """Whether to consume now; pauses or resumes the consumer on a change of phase."""
        if self.phase is None or now - self._read_at >= self.refresh_s:
            try:
                self.phase = self.control.get_phase()
                self._read_at = now
                if health is not None:
                    health.set_ready(True)
            except ControlStoreUnavailable as exc:
                if health is not None:
                    health.set_ready(False, f"control store unavailable: {exc}")
                log.warning("phase_state_unavailable_keeping_last", role=self.role, error=str(exc),
                            phase=self.phase.phase if self.phase else None)
        enabled = self.phase is not None and self.phase.dual_write_enabled
        if enabled and self.paused:
            self.consumer.resume_all()
            self.paused = False
            self.paused_gauge.set(0)
            log.info(f"{self.role}_resumed", phase=self.phase.phase if self.phase else None)
        elif not enabled and not self.paused:
            self.consumer.pause_all()
            self.paused = True
            self.paused_gauge.set(1)
            log.info(f"{self.role}_paused", reason=self.pause_reason,
                     phase=self.phase.phase if self.phase else None)
        return enabled

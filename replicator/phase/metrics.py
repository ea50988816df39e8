"""The phase controller's and watcher's Prometheus metrics, on an injected registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class PhaseMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.phase = Gauge("replicator_migration_phase",
                           "Migration phase last seen or set by this process (1-5)", registry=r)
        self.changes = Counter("replicator_phase_changes_total", "Phase changes made by this process",
                               ["direction"], registry=r)
        self.watch_errors = Counter("replicator_phase_watch_errors_total", "Phase watcher failures", ["kind"],
                                    registry=r)

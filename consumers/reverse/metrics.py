"""Prometheus metrics of the reverse replication (units in names)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ReverseMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.applied = Counter("replicator_reverse_records_applied_total",
                               "Application writes applied to MySQL", ["table", "op"], registry=r)
        self.skipped = Counter("replicator_reverse_records_skipped_total",
                               "Stream records not applied: not an application write, not a mapped item",
                               ["reason"], registry=r)
        self.read = Counter("replicator_reverse_records_read_total", "Stream records read", ["table"],
                            registry=r)
        self.coalesced = Counter("replicator_reverse_records_coalesced_total",
                                 "Changes superseded by a later change of the same row in the same page",
                                 registry=r)
        self.versions_pruned = Counter("replicator_reverse_versions_pruned_total",
                                       "Row versions deleted from cutover.reverse_versions_table after "
                                       "cutover.reverse_versions_retention_s", registry=r)
        self.superseded = Counter("replicator_reverse_records_superseded_total",
                                  "Changes older than the version MySQL holds for their row (a moved row's "
                                  "tombstone read after its upsert, a replay): not written", registry=r)
        self.dead_letters = Counter("replicator_reverse_dead_letters_total",
                                    "Items MySQL could not hold, listed as dead letters", ["reason"],
                                    registry=r)
        self.dead_letters_open = Gauge("replicator_reverse_dead_letters_outstanding_items",
                                       "Dead letters not superseded by a later applied change", registry=r)
        self.retries = Counter("replicator_reverse_retries_total",
                               "Pages tried again (MySQL unavailable, a key another shard frees, an "
                               "expired iterator)", ["reason"], registry=r)
        self.lag = Gauge("replicator_reverse_lag_seconds",
                         "Age of the newest application write applied, 0 when caught up", registry=r)
        self.behind = Gauge("replicator_reverse_records_behind_items",
                            "Approximate records read or readable but not applied yet", registry=r)
        self.apply_seconds = Histogram(
            "replicator_reverse_apply_seconds", "Time to apply one page of changes to MySQL, commit included",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)

"""Prometheus metrics of the stream validator and of reconcile (units in names; rates are counters)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ValidatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.events = Counter("replicator_validator_events_consumed_total",
                              "Change events consumed from the table topics", registry=r)
        self.skipped = Counter("replicator_validator_events_skipped_total",
                               "Events not compared: unsampled, superseded by a later event of the same key "
                               "in the batch, of an unmapped table, or unreadable", ["reason"], registry=r)
        self.keys = Counter("replicator_validator_keys_total",
                            "Keys compared, by outcome (passed, failed, unverified: lag or a row that kept "
                            "changing, never a failure)", ["table", "outcome"], registry=r)
        self.differences = Counter("replicator_validator_differences_total",
                                   "Differing columns (or missing/extra rows) of failed keys, by class",
                                   ["table", "kind"], registry=r)
        self.unverified = Counter("replicator_validator_unverified_total",
                                  "Keys that could not be judged, by reason (lag, changing, error)",
                                  ["table", "reason"], registry=r)
        self.rechecks = Counter("replicator_validator_rechecks_total",
                                "Rounds that waited for the writer (replication lag) before judging",
                                registry=r)
        self.errors = Counter("replicator_validator_errors_total",
                              "Batches whose reads failed (retried; offsets not committed)", ["error"],
                              registry=r)
        self.check_latency = Histogram(
            "replicator_validator_check_seconds", "Time from taking a key to its verdict",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=r)
        self.consumer_lag = Gauge("replicator_validator_consumer_lag_messages",
                                  "Messages in the table topics not yet consumed by this validator "
                                  "(librdkafka statistics, every 5 s)", registry=r)
        self.paused = Gauge("replicator_validator_paused",
                            "1 while the phase does not replicate to DynamoDB (nothing to compare)",
                            registry=r)
        self.heartbeat = Gauge("replicator_validator_heartbeat_timestamp_seconds",
                               "Unix time of the main loop's last iteration", registry=r)


class ReconcileMetrics:
    """``replicator reconcile --metrics-port``: what a long reconciliation has done so far."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.progress = Gauge("replicator_reconcile_stage_done",
                              "Units done in the current stage of a table (ranges, items, rows)",
                              ["table", "stage"], registry=r)
        self.rows = Counter("replicator_reconcile_rows_total",
                            "Rows (MySQL) and items (DynamoDB) compared", ["table", "store"], registry=r)
        self.differences = Counter("replicator_reconcile_differences_total",
                                   "Differences found, by kind", ["table", "kind"], registry=r)
        self.tables = Counter("replicator_reconcile_tables_total",
                              "Tables reconciled, by outcome (equal, different, resumed: done by an "
                              "earlier run of the same --resume)", ["outcome"], registry=r)

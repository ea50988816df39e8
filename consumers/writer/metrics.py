"""Prometheus metrics of the writer (units in names)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WriterMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.applied = Counter("replicator_writer_items_applied_total",
                               "Items written to DynamoDB", ["table"], registry=r)
        self.replayed = Counter("replicator_writer_items_replayed_total",
                                "Writes skipped because DynamoDB already held that version or newer",
                                ["table"], registry=r)
        self.failed = Counter("replicator_writer_items_failed_total",
                              "Events that could not be applied (all of them dead-lettered)", ["table"],
                              registry=r)
        self.dead_lettered = Counter("replicator_writer_dead_letters_total",
                                     "Messages sent to the dead-letter topic", ["reason"], registry=r)
        self.coalesced = Counter("replicator_writer_writes_coalesced_total",
                                 "Writes saved by coalescing events of one item within a batch", registry=r)
        self.events = Counter("replicator_writer_events_consumed_total", "Change events consumed", registry=r)
        self.retries = Counter("replicator_writer_retries_total",
                               "DynamoDB requests retried (throttling, 5xx, connection)", ["reason"],
                               registry=r)
        self.backlog = Gauge("replicator_writer_backlog_items",
                             "Writes handed to DynamoDB and not yet acknowledged", registry=r)
        self.consumer_lag = Gauge("replicator_writer_consumer_lag_messages",
                                  "Messages in the table topics not yet consumed by this writer "
                                  "(librdkafka statistics, every 5 s)", registry=r)
        self.paused = Gauge("replicator_writer_paused",
                            "1 while the phase does not make DynamoDB a write target", registry=r)
        self.cascaded = Counter("replicator_writer_cascaded_changes_total",
                                "Child changes a foreign-key cascade made, written to DynamoDB",
                                ["table", "action"], registry=r)
        self.cascade_barrier_timeouts = Counter(
            "replicator_writer_cascade_barrier_timeouts_total",
            "Cascades run before every earlier change of their tables was consumed (another member behind)",
            registry=r)
        self.apply_latency = Histogram(
            "replicator_writer_apply_latency_seconds", "Time to apply one DynamoDB request, retries included",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=r)
        self.replication_lag = Gauge(
            "replicator_writer_replication_lag_seconds",
            "End-to-end lag of the last applied batch: from its oldest change's MySQL commit to DynamoDB's "
            "acknowledgement (DMS's CDCLatencyTarget)", registry=r)
        self.replication_latency = Histogram(
            "replicator_writer_replication_latency_seconds",
            "Per batch, MySQL commit of its oldest change -> applied in DynamoDB",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600), registry=r)
        self.batch_latency = Histogram(
            "replicator_writer_batch_seconds", "Time from consuming a batch to committing its offsets",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=r)

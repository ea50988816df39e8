"""Prometheus metrics of the binlog reader (rates are ``rate()`` of the counters).

Each :class:`ReaderMetrics` registers into the registry it is given (default: a registry of
its own, so tests can run several readers in one process); ``replicator run`` passes
prometheus_client's default registry and serves it (:func:`serve`), so the process and
platform collectors are served along with the reader's metrics.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from replicator.events import binlog_sequence
from replicator.metrics import Health, serve_metrics


class ReaderMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else CollectorRegistry()
        self.registry = reg
        # /healthz and /readyz of the metrics port: the drain loop beats it, streaming is ready.
        self.health = Health(max_silence_s=120.0)
        self.events = Counter("replicator_reader_events_total", "Change events published (Kafka-committed)",
                              ["table", "op"], registry=reg)
        self.rows = Counter("replicator_reader_rows_total", "Binlog row changes of mapped tables committed",
                            registry=reg)
        self.transactions = Counter("replicator_reader_mysql_transactions_total",
                                    "MySQL transactions whose events were committed to Kafka", registry=reg)
        self.kafka_transactions = Counter("replicator_reader_kafka_transactions_total",
                                          "Kafka transactions committed (each carries a checkpoint)",
                                          registry=reg)
        self.bytes = Counter("replicator_reader_bytes_total", "Bytes of keys and values produced to Kafka",
                             registry=reg)
        self.delivery_errors = Counter("replicator_reader_kafka_delivery_errors_total",
                                       "Kafka messages whose delivery failed (their transaction is aborted)",
                                       registry=reg)
        self.retries = Counter("replicator_reader_retries_total", "Transient failures retried with backoff",
                               ["reason"], registry=reg)
        self.lag = Gauge("replicator_reader_lag_seconds",
                         "Seconds between the server's clock and the commit time of the last committed "
                         "transaction (0 when the server reports nothing newer: heartbeats)", registry=reg)
        self.checkpoint_file = Gauge("replicator_reader_checkpoint_file_sequence",
                                     "Binlog file number of the last committed checkpoint", registry=reg)
        self.checkpoint_offset = Gauge("replicator_reader_checkpoint_offset_bytes",
                                       "Binlog offset of the last committed checkpoint", registry=reg)
        self.checkpoint_time = Gauge("replicator_reader_checkpoint_timestamp_seconds",
                                     "Unix time at which the last checkpoint was committed", registry=reg)
        self.heartbeat_failures = Counter("replicator_reader_heartbeat_failures_total",
                                          "Heartbeats the control store refused", registry=reg)
        self.generation = Gauge("replicator_reader_version_generation",
                                "Version generation in force at the last committed checkpoint (the fence "
                                "row's MySQL generation)", registry=reg)
        self.fence_rows_ignored = Counter("replicator_reader_fence_rows_ignored_total",
                                          "Fence row changes that set no generation (malformed, or going "
                                          "back)", registry=reg)
        self.up = Gauge("replicator_reader_streaming", "1 while the reader streams, 0 while it retries",
                        registry=reg)

    def checkpoint(self, file: str, offset: int, at: float, generation: int = 0) -> None:
        self.generation.set(generation)
        self.checkpoint_file.set(binlog_sequence(file))
        self.checkpoint_offset.set(offset)
        self.checkpoint_time.set(at)


def serve(port: int, registry: CollectorRegistry = REGISTRY) -> ReaderMetrics:
    """Metrics in ``registry`` (default: prometheus_client's), served on ``port`` (0: not served)."""
    metrics = ReaderMetrics(registry)
    serve_metrics(port, registry, health=metrics.health)  # with /healthz and /readyz (replicator.metrics)
    return metrics

"""Wiring of ``replicator write``: check the config, build the adapters, run the loop."""

from __future__ import annotations

from typing import Any

import structlog

from consumers.writer.applier import ApplyMode, ConditionalApplier, default_apply_mode, make_client
from consumers.writer.batch import MapperCache
from consumers.writer.cascade.executor import CascadeExecutor
from consumers.writer.cascade.order import CascadeOrder, OffsetView
from consumers.writer.cascade.setup import load_graph, records_spec, records_table, with_cascade_indexes
from consumers.writer.kafka import KafkaDeadLetterProducer, KafkaEventConsumer
from consumers.writer.metrics import WriterMetrics
from consumers.writer.runner import Writer, WriterOptions
from consumers.writer.schema import TableSchema, load_schemas
from consumers.writer.tables import SourceScope, TableSpec, ensure_tables, merge_specs
from replicator.control import ControlStore, open_control_store
from replicator.errors import ConfigError
from replicator.lifecycle import stop_on_signals
from replicator.mapping import TableMapper
from replicator.mapping.embedded import EmbeddedMapper
from replicator.mapping.foreign_keys import CascadeGraph
from replicator.mapping.indexes import template_prefix
from replicator.mapping.model import check_model
from replicator.metrics import Health, serve_metrics
from replicator.settings import Settings
from replicator.topics import dead_letter_topic, table_topic

log = structlog.get_logger("consumers.writer")


def check_mappings(settings: Settings, schemas: dict[str, TableSchema]) -> list[TableSpec]:
    """Validate every table's mapping against its columns; the DynamoDB tables it needs."""
    if not settings.tables:
        raise ConfigError("no tables to replicate: add a tables: section to the config file")
    check_model(settings)
    specs: dict[str, TableSpec] = {}
    mappers = {t.source: TableMapper(t, *schemas[t.source]) for t in settings.tables}
    for t in settings.tables:
        mapper = mappers[t.source]
        mapper.validate()
        if t.embed is not None:  # no item of its own: entries of its parent's items
            EmbeddedMapper(mapper, mappers[t.embed.parent]).validate()
            continue
        name = settings.dynamodb.table_prefix + t.target_name
        scope = SourceScope(t.source, template_prefix(t.key.pk), bool(mapper.indexes))
        spec = TableSpec(name, t.source, mapper.key_attributes, tuple(ix.gsi for ix in mapper.indexes),
                         (scope,))
        other = specs.get(name)
        if other is not None and [(k.name, k.type) for k in other.key] != [
                (k.name, k.type) for k in spec.key]:
            raise ConfigError(f"tables {other.source} and {t.source} share DynamoDB table {name!r} "
                              f"with different keys; give them the same key templates")
        specs[name] = spec if other is None else merge_specs(other, spec)
    return list(specs.values())


def parent_mappers(settings: Settings, schemas: dict[str, TableSchema]) -> dict[str, TableMapper]:
    """The mappers of the tables others are embedded in, at the schema loaded at start-up."""
    parents = {t.embed.parent for t in settings.tables if t.embed is not None}
    return {t.source: TableMapper(t, *schemas[t.source]) for t in settings.tables if t.source in parents}


def build_writer(settings: Settings, control: ControlStore, *, mode: ApplyMode | None = None,
                 instance_id: str | None = None, client: Any = None, metrics: WriterMetrics | None = None,
                 options: WriterOptions | None = None) -> Writer:
    """A writer over the real adapters (not started: see :func:`start_writer`). ``mode``: the
    apply mode, by default :func:`~consumers.writer.applier.default_apply_mode` of the endpoint."""
    topics = [table_topic(settings.kafka.topic_prefix, t.source) for t in settings.tables]
    metrics = metrics or WriterMetrics()
    applier = ConditionalApplier(
        client if client is not None else make_client(settings),
        mode=mode or default_apply_mode(settings.dynamodb.endpoint_url),
        concurrency=settings.dynamodb.max_concurrency,
        on_retry=lambda reason: metrics.retries.labels(reason).inc(),
        on_chunk=metrics.apply_latency.observe,
    )
    metrics.backlog.set_function(lambda: applier.pending)
    consumer = KafkaEventConsumer(settings, topics, instance_id=instance_id, on_lag=metrics.consumer_lag.set)
    dlq = KafkaDeadLetterProducer(settings, dead_letter_topic(settings.kafka.topic_prefix))
    return Writer(settings, consumer, applier, dlq, control, metrics, options)


def build_cascades(settings: Settings, writer: Writer, graph: CascadeGraph, schemas: dict[str, TableSchema],
                   client: Any, barrier_timeout_s: float = 60.0) -> CascadeOrder:
    """The foreign-key cascades of ``graph`` (docs/design.md): executor and order, over the writer's
    applier and consumer; ``settings`` carries the cascade GSIs (:func:`with_cascade_indexes`)."""
    metrics = writer.metrics
    mappers = {t.source: TableMapper(t, *schemas[t.source]) for t in settings.tables}
    targets = {t.source: settings.dynamodb.table_prefix + t.target_name for t in settings.tables}
    executor = CascadeExecutor(
        graph, mappers, targets, client, writer.applier, records_table(settings),
        settings.dynamodb.tombstone_ttl_s,
        on_applied=lambda table, action, n: metrics.cascaded.labels(table, action).inc(n),
        on_failed=lambda table: metrics.failed.labels(table).inc())
    if not isinstance(writer.consumer, OffsetView):
        raise ConfigError("foreign-key cascades need a consumer that reports offsets (the Kafka consumer)")
    topics = {table_topic(settings.kafka.topic_prefix, t.source): t.source for t in settings.tables}
    log.info("cascades_reproduced", foreign_keys=[f"{fk.child}.{fk.name} -> {fk.parent} ({fk.rules})"
                                                  for fk in graph.edges])
    return CascadeOrder(graph, executor, topics, writer.consumer, writer.commit_applied,
                        barrier_timeout_s=barrier_timeout_s,
                        on_barrier_timeout=metrics.cascade_barrier_timeouts.inc)


def start_writer(writer: Writer) -> None:
    writer.applier.start()
    writer.dead_letters.start()
    writer.consumer.start()


def close_writer(writer: Writer) -> None:
    writer.consumer.close()
    writer.dead_letters.close()
    writer.applier.close()


def run_writer(settings: Settings, *, create_tables: bool = False, mode: ApplyMode | None = None,
               instance_id: str | None = None) -> None:
    """``replicator write``: runs until SIGTERM/SIGINT."""
    stopping = stop_on_signals("consumers.writer")
    schemas = load_schemas(settings)
    graph = load_graph(settings)
    settings = with_cascade_indexes(settings, graph)  # a GSI per cascading foreign key
    specs = check_mappings(settings, schemas)
    client = make_client(settings)
    created = ensure_tables(client, specs, create=create_tables, stream=settings.dynamodb.streams)
    if graph.edges:
        created += ensure_tables(client, [records_spec(settings)], create=create_tables, stream=False)
    if created:
        log.info("dynamodb_tables_created", tables=created)
    metrics = WriterMetrics()
    health = Health(max_silence_s=120.0)  # a batch waits for DynamoDB's acknowledgements (with retries)
    serve_metrics(settings.metrics.port, metrics.registry, health=health)
    with open_control_store(settings) as control:
        writer = build_writer(settings, control, mode=mode, instance_id=instance_id, client=client,
                              metrics=metrics)
        writer.stop_event = stopping
        writer.health = health
        writer.mappers = MapperCache(settings, {source: pk for source, (_, pk) in schemas.items()},
                                     parent_mappers(settings, schemas))
        if graph.edges:
            writer.cascades = build_cascades(settings, writer, graph, schemas, client)
        if stopping.is_set():
            return
        start_writer(writer)
        try:
            writer.run()
        finally:
            close_writer(writer)

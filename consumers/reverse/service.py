"""Wiring of ``replicator reverse``: check the mapping and the streams, build the adapters, run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import structlog

from consumers.reverse.metrics import ReverseMetrics
from consumers.reverse.plan import TablePlan
from consumers.reverse.records import ChildRoute, Route, Target, check_reversible, check_shared
from consumers.reverse.runner import ReverseOptions, ReverseReplicator
from consumers.reverse.sink import MySQLSink
from consumers.reverse.streams import DynamoStreams
from replicator.adapters.dynamodb import dynamodb_client, dynamodbstreams_client
from replicator.client.client import client_mysql_settings
from replicator.control import ControlStore, open_control_store
from replicator.errors import ConfigError
from replicator.lifecycle import stop_on_signals
from replicator.mapping import TableMapper
from replicator.mapping.embedded import EmbeddedMapper
from replicator.metrics import Health, serve_metrics
from replicator.settings import Settings

log = structlog.get_logger("consumers.reverse")


def build_targets(settings: Settings, sink: MySQLSink) -> list[Target]:
    """Every mapped table's plan, checked for reverse replication, grouped by DynamoDB table.

    Fills ``sink.plans``. A mapping that cannot be written back is a :class:`ConfigError`."""
    if not settings.tables:
        raise ConfigError("no tables to replicate: add a tables: section to the config file")
    plans: dict[str, TablePlan] = {}
    for t in settings.tables:
        facts = sink.facts(t.source)
        mapper = TableMapper(t, facts.shape.columns, facts.shape.pk)
        mapper.validate()
        plan = TablePlan(mapper, unique_keys=facts.unique_keys, not_null=facts.not_null)
        check_reversible(plan)
        plans[t.source] = sink.plans[t.source] = plan
    children: dict[str, list[ChildRoute]] = {}
    for t in settings.tables:  # an embedded table's rows are entries of its parent's items
        if t.embed is not None:
            embedded = EmbeddedMapper(plans[t.source].mapper, plans[t.embed.parent].mapper)
            embedded.validate()
            children.setdefault(t.embed.parent, []).append(ChildRoute(plans[t.source], embedded))
    routes: dict[str, list[Route]] = {}
    for t in settings.tables:
        if t.embed is None:
            route = Route(plans[t.source], children.get(t.source, ()))
            routes.setdefault(settings.dynamodb.table_prefix + t.target_name, []).append(route)
    for rs in routes.values():  # the rows that can move between items are ordered by version
        for route in rs:
            if not route.key_is_pk:
                sink.versioned.add(route.source)
            sink.versioned.update(child.source for child in route.children.values())
    if sink.versioned:
        sink.create_versions_table()
    targets = [Target(name, rs) for name, rs in routes.items()]
    for target in targets:
        check_shared(target)
    return targets


def build_reverse(settings: Settings, store: ControlStore, *, options: ReverseOptions | None = None,
                  metrics: ReverseMetrics | None = None) -> ReverseReplicator:
    """A reverse replicator over the real adapters, its sink started (see :func:`reverse_session`)."""
    sink = MySQLSink(client_mysql_settings(settings), versions_table=settings.cutover.reverse_versions_table)
    sink.start()
    try:
        targets = build_targets(settings, sink)
        streams = DynamoStreams(dynamodb_client(settings.dynamodb),
                                dynamodbstreams_client(settings.dynamodb))
        options = replace(options or ReverseOptions(),
                          versions_retention_s=settings.cutover.reverse_versions_retention_s)
        rev = ReverseReplicator(targets, streams, sink, store, metrics, options)
        rev.reload = lambda: build_targets(settings, sink)
        return rev
    except BaseException:
        sink.close()
        raise


@contextmanager
def reverse_session(settings: Settings, *, options: ReverseOptions | None = None,
                    metrics: ReverseMetrics | None = None) -> Iterator[ReverseReplicator]:
    """A started reverse replicator (streams checked, checkpoints loaded), closed on exit."""
    with open_control_store(settings) as store:
        rev = build_reverse(settings, store, options=options, metrics=metrics)
        try:
            rev.start()
            yield rev
        finally:
            rev.close()
            rev.sink.close()


def run_reverse(settings: Settings, *, options: ReverseOptions | None = None,
                metrics_port: int | None = None) -> None:
    """``replicator reverse``: runs until SIGTERM/SIGINT."""
    stopping = stop_on_signals("consumers.reverse")
    metrics = ReverseMetrics()
    health = Health(max_silence_s=120.0)
    serve_metrics(settings.metrics.port if metrics_port is None else metrics_port, metrics.registry,
                  health=health)
    with reverse_session(settings, options=options, metrics=metrics) as rev:
        rev.stop_event = stopping
        rev.health = health
        if not stopping.is_set():
            rev.run()

"""Wiring of ``replicator validate``: build the adapters, run the loop, report."""

from __future__ import annotations

import threading
import time
from typing import Any

from consumers.writer.kafka import KafkaEventConsumer
from replicator.adapters.dynamodb import dynamodb_client
from replicator.control import ControlStore, open_control_store
from replicator.control.watermark import PipelineWatermark
from replicator.errors import ConfigError
from replicator.lifecycle import stop_on_signals
from replicator.metrics import Health, serve_metrics
from replicator.settings import Settings
from replicator.topics import table_topic
from validators.checks import CheckerOptions, LagAwareChecker
from validators.metrics import ValidatorMetrics
from validators.stores import Stores
from validators.stream import StreamValidator, Totals, ValidatorOptions


def build_validator(settings: Settings, control: ControlStore, *, instance_id: str | None = None,
                    client: Any = None, metrics: ValidatorMetrics | None = None,
                    options: ValidatorOptions | None = None, poll_s: float = 0.1,
                    stop: threading.Event | None = None) -> StreamValidator:
    """A validator over the real adapters (not started: see :func:`start_validator`)."""
    if not settings.tables:
        raise ConfigError("no tables to validate: add a tables: section to the config file")
    topics = [table_topic(settings.kafka.topic_prefix, t.source) for t in settings.tables]
    metrics = metrics or ValidatorMetrics()
    consumer = KafkaEventConsumer(settings, topics, group=settings.validator_group, instance_id=instance_id,
                                  on_lag=metrics.consumer_lag.set)
    stores = Stores(settings, client if client is not None else dynamodb_client(settings.dynamodb))
    watermark = PipelineWatermark(control, settings)
    stop = stop if stop is not None else threading.Event()
    checker = LagAwareChecker(
        stores, watermark.snapshot, CheckerOptions(recheck_wait_s=settings.validation.recheck_wait_s,
                                                   poll_s=poll_s),
        clock=time.time, sleep=stop.wait, stop=stop,  # a wait that a stop interrupts
        topics=topics)  # a parent's topic writes its children's items too (embedded, cascades)

    def reset() -> None:
        stores.close()
        stores.forget()
        stores.start()

    return StreamValidator(settings, consumer, stores, checker, control, metrics, options,
                           member=consumer.member_id, on_reset=reset)


def start_validator(v: StreamValidator) -> None:
    assert isinstance(v.stores, Stores)
    v.stores.start()
    v.consumer.start()


def close_validator(v: StreamValidator) -> None:
    v.consumer.close()
    assert isinstance(v.stores, Stores)
    v.stores.close()


def run_validator(settings: Settings, *, instance_id: str | None = None, once: bool = False,
                  idle_s: float = 10.0) -> Totals:
    """``replicator validate``: until SIGTERM/SIGINT, or with ``once`` until no message has come for
    ``idle_s`` seconds (the topics are read to their end)."""
    stopping = stop_on_signals("validators.stream")
    metrics = ValidatorMetrics()
    # A batch may wait for the pipeline (rounds beat too): silence past a few of those is a stuck loop.
    health = Health(max_silence_s=max(60.0, 4 * settings.validation.recheck_wait_s))
    serve_metrics(settings.metrics.port, metrics.registry, health=health)
    with open_control_store(settings) as control:
        validator = build_validator(settings, control, instance_id=instance_id,
                                    metrics=metrics, stop=stopping)
        validator.health = health

        def wait(seconds: float) -> None:  # the checker's rounds are the loop too
            health.beat()
            stopping.wait(seconds)

        validator.checker.sleep = wait
        start_validator(validator)
        try:
            until = (lambda v: v.clock() - v.last_message_at >= idle_s) if once else None
            return validator.run(until)
        finally:
            close_validator(validator)

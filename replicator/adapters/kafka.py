"""The door to Kafka (confluent-kafka / librdkafka): client configs, error mapping, topics.

Every producer, consumer and admin client of the product is built here from
:class:`~replicator.settings.KafkaSettings`, so ``kafka.extra`` (SASL, TLS, any librdkafka
option) applies to all of them, and librdkafka's own log lines go through Python logging
(and so into the JSON log). :func:`kafka_errors` maps confluent-kafka exceptions into the
error tree: a fenced transactional producer is a :class:`ConfigError` (two readers on one
migration), anything else :class:`BrokerUnavailable`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from replicator.errors import BrokerUnavailable, ConfigError
from replicator.settings import KafkaSettings
from replicator.topics import TopicSpec

__all__ = [
    "REACH_HINT", "AdminClient", "Consumer", "KafkaError", "KafkaException", "Message", "Producer",
    "TopicPartition", "TopicSpec",
    "admin_client", "client_config", "consumer", "ensure_topics", "error_code", "is_fenced",
    "is_partition_eof", "is_unknown_topic", "kafka_errors", "producer", "read_range", "topic_names",
]

log = structlog.get_logger("replicator.adapters.kafka")

_FENCED = (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)
# Authentication or authorization refused: bad SASL credentials, ACLs (retrying cannot help).
_REFUSED = frozenset((KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED,
                      KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
                      KafkaError.CLUSTER_AUTHORIZATION_FAILED,
                      KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED))
# The brokers cannot be reached (or not over TLS/SASL as configured).
_UNREACHABLE = frozenset((KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT,
                          KafkaError._RESOLVE, KafkaError._SSL))
#: What a message about an unreachable broker tells the operator to check.
REACH_HINT = ("check kafka.bootstrap_servers (REPLICATOR_KAFKA__BOOTSTRAP_SERVERS), the TLS/SASL settings "
              "in kafka.extra, and that the brokers run")


def client_config(kafka: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    """The base librdkafka config: servers, ``kafka.extra``, logging; ``overrides`` on top."""
    return {
        "bootstrap.servers": kafka.bootstrap_servers,
        "logger": logging.getLogger("librdkafka"),
        **kafka.extra,
        **overrides,
    }


def producer(kafka: KafkaSettings, **overrides: Any) -> Producer:
    return Producer(client_config(kafka, **overrides))


def consumer(kafka: KafkaSettings, group: str, **overrides: Any) -> Consumer:
    """A consumer that never commits on its own: callers commit what they have made durable."""
    return Consumer(client_config(kafka, **{"group.id": group, "enable.auto.commit": False, **overrides}))


def admin_client(kafka: KafkaSettings) -> AdminClient:
    return AdminClient(client_config(kafka))


def error_code(exc: KafkaException | KafkaError | None) -> int | None:
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else exc
    return err.code() if isinstance(err, KafkaError) else None


def is_fenced(err: KafkaException | KafkaError | None) -> bool:
    return error_code(err) in _FENCED


def is_partition_eof(err: KafkaError | None) -> bool:
    return err is not None and err.code() == KafkaError._PARTITION_EOF


def is_unknown_topic(err: KafkaError | None) -> bool:
    return err is not None and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


@contextmanager
def kafka_errors(what: str) -> Iterator[None]:
    """Translate confluent-kafka exceptions raised inside the block; ``what`` says what failed."""
    try:
        yield
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if is_fenced(exc):
            raise ConfigError(
                f"Kafka fenced this producer while {what}: another process uses the same "
                "transactional id (kafka.transactional_id / topic_prefix). Run one reader per migration."
            ) from exc
        if error_code(exc) in _REFUSED:
            raise ConfigError(f"Kafka refused this client while {what}: {err}; check the credentials and "
                              "ACLs in kafka.extra (REPLICATOR_KAFKA__EXTRA)") from exc
        hint = f"; {REACH_HINT}" if error_code(exc) in _UNREACHABLE else ""
        raise BrokerUnavailable(f"Kafka failed while {what}: {err}{hint}") from exc
    except BufferError as exc:
        raise BrokerUnavailable(f"Kafka producer queue full while {what}: {exc}") from exc


def topic_names(kafka: KafkaSettings, timeout_s: float) -> set[str]:
    """The topics the brokers list: a start-up probe that the brokers answer within ``timeout_s``.

    librdkafka's own connection errors are not logged (its lines would repeat the one message
    raised here, :class:`BrokerUnavailable` naming the options to check).
    """
    admin = AdminClient(client_config(kafka, log_level=0))
    with kafka_errors(f"connecting to {kafka.bootstrap_servers}"):
        return set(admin.list_topics(timeout=timeout_s).topics)


def ensure_topics(kafka: KafkaSettings, specs: Sequence[TopicSpec], timeout_s: float = 30.0) -> list[str]:
    """Create the topics of ``specs`` that do not exist; returns the names created.

    A topic created meanwhile by another process counts as existing.
    """
    admin = admin_client(kafka)
    with kafka_errors("listing topics"):
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=kafka.replication_factor,
                 config=dict(s.config))
        for s in specs if s.name not in existing
    ]
    if not missing:
        return []
    futures = admin.create_topics(missing, operation_timeout=timeout_s, request_timeout=timeout_s)
    created = []
    for name, fut in futures.items():
        try:
            fut.result()
        except KafkaException as exc:
            if error_code(exc) == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            if error_code(exc) in _REFUSED:
                why = exc.args[0] if exc.args else exc
                raise ConfigError(f"Kafka refused to create topic {name}: {why}; grant CREATE on the topics "
                                  "under kafka.topic_prefix, or create them first") from exc
            raise BrokerUnavailable(f"creating Kafka topic {name} at {kafka.bootstrap_servers} failed: "
                                    f"{exc.args[0] if exc.args else exc}") from exc
        log.info("topic_created", topic=name)
        created.append(name)
    return created


def read_range(reader: Consumer, topic: str, partition: int, start: int, high: int,
               timeout_s: float) -> Iterator[Message]:
    """The records of ``[start, high)`` of one partition as ``reader`` sees them (with
    ``read_committed``: committed data only, no control markers), until the partition's end.

    ``reader`` needs ``enable.partition.eof``. A broker error, or not reaching the end within
    ``timeout_s``, raises :class:`BrokerUnavailable`.
    """
    reader.assign([TopicPartition(topic, partition, start)])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with kafka_errors(f"reading {topic}[{partition}]"):
            msg = reader.poll(0.5)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if is_partition_eof(err):
                return
            raise BrokerUnavailable(f"reading {topic}[{partition}] failed: {err}")
        yield msg
        offset = msg.offset()
        if offset is not None and offset >= high - 1:
            return
    raise BrokerUnavailable(f"reading {topic}[{partition}] did not reach its end within {timeout_s:.0f} s")

"""Remove what a demo run created, all of it namespaced by the run's id.

The MySQL database and the application's MySQL user, the Kafka topics and consumer groups
under ``kafka.topic_prefix``, the DynamoDB tables under ``dynamodb.table_prefix`` (the control
table among them when the control store is DynamoDB) and the Redis keys of the control
namespace. Each kind is removed on its own, so one service being down does not leave the
others behind; what could not be removed is returned, one line per service.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import structlog

from replicator.adapters import dynamodb, kafka, mysql, redis
from replicator.errors import BrokerUnavailable, ReplicatorError
from replicator.settings import MySQLSettings, Settings

log = structlog.get_logger("replicator.demo.cleanup")

_TIMEOUT_S = 30.0
_GROUP_WAIT_S = 60.0  # above the consumers' default session timeout (45 s)


def drop_database(admin: MySQLSettings, database: str) -> None:
    conn = mysql.connect(admin)
    try:
        with mysql.mysql_errors(f"dropping database {database}", admin), conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
    finally:
        conn.close()


def drop_users(admin: MySQLSettings, users: Sequence[str]) -> None:
    conn = mysql.connect(admin)
    try:
        with mysql.mysql_errors(f"dropping the MySQL users {', '.join(users)}", admin), conn.cursor() as cur:
            for user in users:
                cur.execute("DROP USER IF EXISTS %s@'%%'", (user,))
    finally:
        conn.close()


def delete_kafka_namespace(settings: Settings, group_wait_s: float = _GROUP_WAIT_S) -> None:
    """Topics and consumer groups named ``<topic_prefix>.…``.

    A group whose last member was killed (a process that did not stop in time) stays non-empty
    until the broker times its session out; its deletion is tried again until ``group_wait_s``.
    """
    ours = settings.kafka.topic_prefix + "."
    admin = kafka.admin_client(settings.kafka)
    with kafka.kafka_errors(f"deleting the topics {ours}*"):
        topics = [t for t in admin.list_topics(timeout=_TIMEOUT_S).topics if t.startswith(ours)]
        if topics:
            for fut in admin.delete_topics(topics, operation_timeout=_TIMEOUT_S).values():
                fut.result()
    deadline = time.monotonic() + group_wait_s
    while True:
        try:
            with kafka.kafka_errors(f"deleting the consumer groups {ours}*"):
                listed = admin.list_consumer_groups(request_timeout=_TIMEOUT_S).result()
                groups = [g.group_id for g in listed.valid if g.group_id.startswith(ours)]
                if groups:
                    for fut in admin.delete_consumer_groups(groups, request_timeout=_TIMEOUT_S).values():
                        fut.result()
            return
        except BrokerUnavailable as exc:
            if time.monotonic() > deadline:
                raise
            log.info("demo_cleanup_group_busy", error=str(exc), retry_in_s=2)
            time.sleep(2)


def delete_dynamodb_tables(settings: Settings) -> None:
    prefix = settings.dynamodb.table_prefix
    if not prefix:  # never delete every table of an account
        return
    client = dynamodb.dynamodb_client(settings.dynamodb)
    try:
        with dynamodb.dynamo_errors(f"deleting the tables {prefix}*"):
            names = [n for page in client.get_paginator("list_tables").paginate()
                     for n in page["TableNames"] if n.startswith(prefix)]
            for name in names:
                client.delete_table(TableName=name)
    finally:
        client.close()  # its pooled connections (an unclosed socket warns where warnings are errors)


def delete_redis_namespace(settings: Settings) -> None:
    if settings.control.backend != "redis":
        return
    client = redis.redis_client(settings.control.redis_url)
    try:
        with redis.redis_errors(f"deleting the keys {settings.namespace}:*"):
            keys = list(client.scan_iter(match=f"{settings.namespace}:*"))
            if keys:
                client.delete(*keys)
    finally:
        redis.close_quietly(client)


def remove_demo_resources(settings: Settings, admin: MySQLSettings, database: str, *,
                          users: Sequence[str] = ()) -> list[str]:
    """Remove everything (``users``: MySQL users the run created); returns what failed (empty when
    all is gone)."""
    steps: list[tuple[str, Callable[[], None]]] = [
        ("mysql", lambda: drop_database(admin, database)),
        ("mysql users", lambda: drop_users(admin, users) if users else None),
        ("kafka", lambda: delete_kafka_namespace(settings)),
        ("dynamodb", lambda: delete_dynamodb_tables(settings)),
        ("redis", lambda: delete_redis_namespace(settings)),
    ]
    failed: list[str] = []
    for service, step in steps:
        try:
            step()
        except ReplicatorError as exc:
            log.warning("demo_cleanup_failed", service=service, error=str(exc))
            failed.append(f"{service}: {exc}")
    return failed

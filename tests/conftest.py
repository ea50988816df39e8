"""Shared fixtures.

Integration tests talk to real servers whose endpoints come from the environment
(``REPLICATOR_*`` variables), falling back to ``.stack/env`` written by ``make stack-up``.
Each test gets isolated resources on those servers -- a unique MySQL database, Kafka topic
prefix, DynamoDB table prefix and Redis namespace -- and they are removed afterwards, so
tests never reset a shared server and can run against one somebody else also uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pymysql
import pytest

from replicator.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
STACK_ENV = ROOT / ".stack" / "env"

# Hypothesis profiles. "dev" is Hypothesis's defaults. "ci" (loaded when CI is set) prints the
# reproduce blob of a failure next to its seed, so a red CI run can be replayed locally with
# `pytest --hypothesis-seed=N` or `@reproduce_failure(...)`; it keeps inputs random (Hypothesis's
# own built-in "ci" profile, which this replaces, derandomizes), drops the deadline (shared
# runners stall often enough to fail a timing check that says nothing about the code) and the
# example database (the workspace is thrown away). Both start from Hypothesis's "default"
# profile, not from whatever Hypothesis auto-loaded on import (its "ci" whenever CI is set at
# all, even to "false"). HYPOTHESIS_PROFILE=dev|ci picks one explicitly. No health check is
# suppressed: strategies draw inside their domains instead of filtering, so filter_too_much
# means a real regression.
_HYPOTHESIS_BASE = hypothesis.settings.get_profile("default")
hypothesis.settings.register_profile("dev", _HYPOTHESIS_BASE)
hypothesis.settings.register_profile(
    "ci", _HYPOTHESIS_BASE, derandomize=False, print_blob=True, deadline=None, database=None)
_IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if _IN_CI else "dev"))


def _read_stack_env() -> dict[str, str]:
    env: dict[str, str] = {}
    if STACK_ENV.exists():
        for line in STACK_ENV.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                env[key.strip()] = value.strip()
    # Explicit variables (CI against another stack, docker compose) win over the file.
    env.update({k: v for k, v in os.environ.items() if k.startswith(("REPLICATOR_", "STACK_", "AWS_"))})
    return env


@pytest.fixture(scope="session")
def stack_env() -> dict[str, str]:
    env = _read_stack_env()
    if "REPLICATOR_MYSQL__HOST" not in env:
        pytest.fail(
            "no stack endpoints: run `make stack-up` (writes .stack/env) or export the "
            "REPLICATOR_* variables of your servers", pytrace=False,
        )
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, env.get(key, "local"))
    os.environ.setdefault("AWS_DEFAULT_REGION", env.get("REPLICATOR_DYNAMODB__REGION", "us-east-1"))
    return env


@pytest.fixture()
def unique() -> str:
    """A short id for this test's resources (lower-case, valid in every system's names)."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture()
def isolated_env(stack_env: dict[str, str], unique: str,
                 monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """The stack's variables plus this test's namespaces, also set in os.environ for subprocesses.

    The switch of the write target's fence row gets a database of its own, flipped with the
    admin user (the pipeline's user has no DDL), dropped afterwards.
    """
    env = dict(stack_env)
    env.update({
        "REPLICATOR_KAFKA__TOPIC_PREFIX": unique,
        "REPLICATOR_DYNAMODB__TABLE_PREFIX": f"{unique}-",
        "REPLICATOR_CONTROL__NAMESPACE": unique,
        "REPLICATOR_CUTOVER__FENCE_TABLE": f"{unique}_fence.fence",
        # DynamoDB Local slows down with every stream record it keeps: streams only where a test
        # reads them (the reverse replication's and the switch's tests turn them on).
        "REPLICATOR_DYNAMODB__STREAMS": "false",
        "REPLICATOR_CUTOVER__MYSQL_USER": env.get("STACK_MYSQL_ADMIN_USER", "admin"),
        "REPLICATOR_CUTOVER__MYSQL_PASSWORD": env.get("STACK_MYSQL_ADMIN_PASSWORD", ""),
    })
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield env
    conn = admin_connect(stack_env)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{unique}_fence`")
    finally:
        conn.close()


@pytest.fixture()
def settings(isolated_env: dict[str, str]) -> Settings:
    """Settings pointing at the stack, namespaced for this test (tables: none; override as needed)."""
    return load_settings()


def admin_connect(env: dict[str, str], database: str | None = None, **kw: Any) -> pymysql.Connection[Any]:
    return pymysql.connect(
        host=env["REPLICATOR_MYSQL__HOST"], port=int(env["REPLICATOR_MYSQL__PORT"]),
        user=env.get("STACK_MYSQL_ADMIN_USER", "admin"), password=env.get("STACK_MYSQL_ADMIN_PASSWORD", ""),
        database=database, autocommit=True, charset="utf8mb4", **kw,
    )


@pytest.fixture()
def mysql_db(stack_env: dict[str, str], unique: str) -> Iterator[str]:
    """A fresh database for this test, dropped afterwards."""
    conn = admin_connect(stack_env)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{unique}` CHARACTER SET utf8mb4")
    try:
        yield unique
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{unique}`")
        conn.close()


@pytest.fixture()
def mysql_admin(stack_env: dict[str, str], mysql_db: str) -> Iterator[pymysql.Connection[Any]]:
    """An admin connection (autocommit) with the test's database selected."""
    conn = admin_connect(stack_env, mysql_db)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture()
def kafka_cleanup(stack_env: dict[str, str], unique: str) -> Iterator[None]:
    """Delete every topic under this test's prefix afterwards."""
    yield
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": stack_env["REPLICATOR_KAFKA__BOOTSTRAP_SERVERS"]})
    topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(unique + ".")]
    if topics:
        for fut in admin.delete_topics(topics, operation_timeout=30).values():
            fut.result()


@pytest.fixture()
def dynamodb(stack_env: dict[str, str], unique: str) -> Iterator[Any]:
    """A boto3 DynamoDB client; tables under this test's prefix are deleted afterwards."""
    import boto3

    client = boto3.client(
        "dynamodb", endpoint_url=stack_env.get("REPLICATOR_DYNAMODB__ENDPOINT_URL") or None,
        region_name=stack_env.get("REPLICATOR_DYNAMODB__REGION", "us-east-1"),
    )
    yield client
    for page in client.get_paginator("list_tables").paginate():
        for name in page["TableNames"]:
            if name.startswith(f"{unique}-"):
                client.delete_table(TableName=name)


@pytest.fixture()
def redis_client(stack_env: dict[str, str], unique: str) -> Iterator[Any]:
    """A Redis client; keys under this test's namespace are deleted afterwards."""
    import redis

    r = redis.Redis.from_url(stack_env["REPLICATOR_CONTROL__REDIS_URL"])
    yield r
    keys = list(r.scan_iter(match=f"{unique}:*", count=500))
    if keys:
        r.delete(*keys)
    r.close()


def stack_ctl(action: str, service: str) -> None:
    """Stop/start/kill one server of the local process stack (restart tests)."""
    if os.environ.get("STACK_KIND", _read_stack_env().get("STACK_KIND")) != "processes":
        pytest.skip("server restarts need the local process stack (make stack-up)")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "stack.py"), action, service], check=True)

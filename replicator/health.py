"""Probes of the four services the product talks to: for ``replicator check``, and the start-up
requirements of the long-running sub-commands (:func:`require`).

A sub-command that cannot reach a system it needs when it starts stops at once (exit 2) with
the translated error's message, which names the option pointing at that system; once running,
the processes retry outages instead. A mapped table that is not in MySQL stops it too
(:func:`check_tables_exist`), naming ``tables[].source``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import structlog

from replicator.adapters import dynamodb, kafka, mysql, redis
from replicator.catalog import read_table_shape
from replicator.control import open_control_store
from replicator.errors import ReplicatorError, SourceConfigError, SourceTableMissingError
from replicator.settings import Settings
from replicator.topics import table_topic

log = structlog.get_logger("replicator.health")

System = Literal["mysql", "kafka", "dynamodb", "control"]


@dataclass(frozen=True)
class Probe:
    service: str
    endpoint: str
    ok: bool
    detail: str
    seconds: float


REQUIRED_BINLOG = {
    "log_bin": "ON",
    "binlog_format": "ROW",
    "binlog_row_image": "FULL",
}


def probe_mysql(s: Settings) -> str:
    conn = mysql.connect(s.mysql)
    try:
        with mysql.mysql_errors("reading the server's binlog settings", s.mysql), conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            version = str(cur.fetchone()[0])
            cur.execute(
                "SHOW GLOBAL VARIABLES WHERE Variable_name IN "
                "('log_bin','binlog_format','binlog_row_image','binlog_row_metadata')"
            )
            found = {str(k): str(v) for k, v in cur.fetchall()}
    finally:
        conn.close()
    wrong = [f"{k}={found.get(k)!r} (need {v})" for k, v in REQUIRED_BINLOG.items() if found.get(k) != v]
    if found.get("binlog_row_metadata", "FULL") != "FULL":
        wrong.append(f"binlog_row_metadata={found['binlog_row_metadata']!r} (need FULL)")
    if wrong:
        raise SourceConfigError("binlog not usable: " + ", ".join(wrong))
    return f"{version}, binlog ROW/FULL"


def probe_kafka(s: Settings) -> str:
    admin = kafka.admin_client(s.kafka)
    with kafka.kafka_errors("listing topics"):
        md = admin.list_topics(timeout=5)
    return f"{len(md.brokers)} broker(s), {len(md.topics)} topic(s)"


def probe_dynamodb(s: Settings) -> str:
    client = dynamodb.dynamodb_client(s.dynamodb)
    with dynamodb.dynamo_errors("listing tables"):
        tables = client.list_tables(Limit=100)["TableNames"]
    return f"{len(tables)} table(s) visible"


def probe_redis(s: Settings) -> str:
    r = redis.redis_client(s.control.redis_url, decode_responses=False)
    try:
        with redis.redis_errors("pinging"):
            r.ping()
            info: dict[str, object] = r.info("server")  # type: ignore[assignment]
        return f"redis {info['redis_version']}"
    finally:
        redis.close_quietly(r)


def run_probes(s: Settings) -> list[Probe]:
    probes: list[tuple[str, str, Callable[[Settings], str]]] = [
        ("mysql", f"{s.mysql.host}:{s.mysql.port}", probe_mysql),
        ("kafka", s.kafka.bootstrap_servers, probe_kafka),
        ("dynamodb", s.dynamodb.endpoint_url or f"aws:{s.dynamodb.region}", probe_dynamodb),
    ]
    if s.control.backend == "redis":
        probes.append(("redis", redis.redacted(s.control.redis_url), probe_redis))
    results = []
    for name, endpoint, fn in probes:
        t0 = time.monotonic()
        try:
            detail, ok = fn(s), True
        except ReplicatorError as exc:
            detail, ok = f"{type(exc).__name__}: {exc}", False
        results.append(Probe(name, endpoint, ok, detail, time.monotonic() - t0))
    return results


# --------------------------------------------------------------------------- start-up requirements


def _reach_mysql(s: Settings) -> None:
    mysql.connect(s.mysql).close()


def _reach_kafka(s: Settings) -> None:
    names = kafka.topic_names(s.kafka, timeout_s=s.kafka.connect_timeout_s)
    missing = sorted(t for t in (table_topic(s.kafka.topic_prefix, m.source) for m in s.tables)
                     if t not in names)
    if missing:
        log.warning("kafka_topics_missing", topics=missing,
                    hint="the reader creates them when it starts (`replicator run`); waiting for them")


def _reach_dynamodb(s: Settings) -> None:
    client = dynamodb.dynamodb_client(s.dynamodb, attempts=1)
    with dynamodb.dynamo_errors("listing tables (start-up check)"):
        client.list_tables(Limit=1)


def _reach_control(s: Settings) -> None:
    with open_control_store(s) as store:
        store.get_phase()


_REACH: dict[System, Callable[[Settings], None]] = {
    "mysql": _reach_mysql, "kafka": _reach_kafka, "dynamodb": _reach_dynamodb, "control": _reach_control,
}


def require(settings: Settings, systems: Iterable[System]) -> None:
    """Reach each of ``systems`` once; the first that fails raises its translated error (exit 2,
    the message naming the option to fix). Kafka also warns about mapped tables' missing topics."""
    for system in systems:
        _REACH[system](settings)


def missing_tables(settings: Settings, sources: Iterable[str] | None = None) -> list[str]:
    """The mapped tables (``sources``, default: all) that MySQL does not show to ``mysql.user``."""
    wanted = list(sources if sources is not None else (t.source for t in settings.tables))
    if not wanted:
        return []
    conn = mysql.connect(settings.mysql)
    try:
        with mysql.mysql_errors("looking up the mapped tables", settings.mysql), conn.cursor() as cur:
            return [src for src in wanted if read_table_shape(cur, *src.split(".", 1)) is None]
    finally:
        conn.close()


def check_tables_exist(settings: Settings, sources: Iterable[str] | None = None) -> None:
    """Stop (exit 2) when a mapped table is not in MySQL, naming it and ``tables[].source``."""
    missing = missing_tables(settings, sources)
    if missing:
        raise SourceTableMissingError(
            f"mapped table(s) not in MySQL at {settings.mysql.host}:{settings.mysql.port}: "
            f"{', '.join(missing)}; fix tables[].source in the configuration, create the table, or grant "
            f"SELECT on it to {settings.mysql.user!r} (mysql.user; MySQL hides tables a user cannot read)")

"""Probes of the four services the product talks to, for ``replicator check``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from replicator.adapters import dynamodb, kafka, mysql, redis
from replicator.errors import ReplicatorError, SourceConfigError
from replicator.settings import Settings


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
        probes.append(("redis", s.control.redis_url, probe_redis))
    results = []
    for name, endpoint, fn in probes:
        t0 = time.monotonic()
        try:
            detail, ok = fn(s), True
        except ReplicatorError as exc:
            detail, ok = f"{type(exc).__name__}: {exc}", False
        results.append(Probe(name, endpoint, ok, detail, time.monotonic() - t0))
    return results

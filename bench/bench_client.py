"""The application client's overhead per phase, against direct PyMySQL / boto3 calls.

One single-row get by primary key, measured in the same run for: a direct PyMySQL
``SELECT ... WHERE id = %s`` (baseline of phases 1-2), a direct boto3 ``get_item`` with a
consistent read (baseline of phases 4-5), and the client in each phase. Rounds interleave the
configurations so that drift on this shared machine hits all of them alike. Targets (issue
"application client"): p50 overhead <= 0.3 ms in phases 1-2 and 4-5; phase 3's p99 <= max(MySQL
p99, DynamoDB p99) + 1 ms, the two reads running concurrently.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from bench.common import admin_mysql, remove_run
from consumers.writer.tables import TableSpec, ensure_tables
from replicator.adapters.dynamodb import dynamodb_client
from replicator.adapters.mysql import connect as mysql_connect
from replicator.catalog import read_table_shape
from replicator.client import connect
from replicator.control import HistoryEntry, PhaseState, open_control_store
from replicator.events import Temporal
from replicator.logs import configure_logging
from replicator.mapping import TableMapper
from replicator.mapping.conditional import upsert
from replicator.settings import LogSettings, Settings, load_settings

ROWS = 500
ROUNDS = int(os.environ.get("BENCH_CLIENT_ROUNDS", "10"))
PER_ROUND = int(os.environ.get("BENCH_CLIENT_GETS", "200"))


def _pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]


def _set_phase(store: Any, phase: int) -> None:
    cur = store.get_phase()
    if cur.phase == phase:
        return
    store.compare_and_set(
        PhaseState(phase=phase, epoch=cur.epoch + 1, updated_at=time.time(), updated_by="bench",
                   reason="bench"),
        HistoryEntry(epoch=cur.epoch + 1, at=time.time(), actor="bench", from_phase=cur.phase, to_phase=phase,
                     reason="bench"))


def main() -> dict[str, Any]:
    configure_logging(LogSettings(level="warning"))
    unique = "b" + uuid.uuid4().hex[:10]
    base = load_settings()
    settings = load_settings(
        kafka={"topic_prefix": unique}, dynamodb={"table_prefix": f"{unique}-"},
        control={"namespace": unique},
        tables=[{"source": f"{unique}.users", "target": "users"}],
        client={"mysql_user": admin_mysql(base).user,
                "mysql_password": admin_mysql(base).password.get_secret_value()},
        log={"level": "warning"})
    admin = mysql_connect(admin_mysql(settings), autocommit=True)
    ddb = dynamodb_client(settings.dynamodb)
    store = open_control_store(settings)
    store.start()
    try:
        return _run(settings, admin, ddb, store, unique)
    finally:
        store.close()
        admin.close()
        remove_run(settings, unique)


def _run(settings: Settings, admin: Any, ddb: Any, store: Any, db: str) -> dict[str, Any]:
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{db}`")
        cur.execute(f"CREATE TABLE `{db}`.users (id INT PRIMARY KEY, email VARCHAR(120) NOT NULL, "
                    "name VARCHAR(80), balance DECIMAL(12,2) NOT NULL, created_at DATETIME(6) NOT NULL)")
        cur.executemany(f"INSERT INTO `{db}`.users VALUES (%s, %s, %s, %s, %s)",
                        [(i, f"u{i}@example.com", f"User {i}", Decimal("10.50"),
                          dt.datetime(2024, 1, 1, 0, 0, 0, i)) for i in range(ROWS)])
        shape = read_table_shape(cur, db, "users")
    assert shape is not None
    mapper = TableMapper(settings.tables[0], shape.columns, shape.pk)
    target = f"{db}-users"
    ensure_tables(ddb, [TableSpec(target, f"{db}.users", mapper.key_attributes)], create=True)
    rows = []
    with admin.cursor() as cur:
        cur.execute(f"SELECT id, email, name, balance, created_at FROM `{db}`.users")
        for i, email, name, balance, created in cur.fetchall():
            rows.append({"id": i, "email": email, "name": name, "balance": balance,
                         "created_at": Temporal("datetime", created.strftime("%Y-%m-%dT%H:%M:%S.%f"))})
    for row in rows:
        ddb.put_item(**upsert(mapper, target, row, 1000 + row["id"], "snapshot").put_item_params())

    direct = mysql_connect(admin_mysql(settings), database=db)
    keys = [{"id": {"N": str(i)}} for i in range(ROWS)]

    def mysql_get(i: int) -> None:
        with direct.cursor() as cur:
            cur.execute("SELECT * FROM users WHERE id = %s", (i,))
            cur.fetchone()

    def dynamo_get(i: int) -> None:
        ddb.get_item(TableName=target, Key=keys[i], ConsistentRead=True)

    client = connect(settings, name="bench")
    users = client.table(f"{db}.users")
    configs: dict[str, tuple[int | None, Callable[[int], Any]]] = {
        "pymysql": (None, mysql_get), "boto3": (None, dynamo_get),
        **{f"client_phase{n}": (n, lambda i: users.get({"id": i})) for n in (1, 2, 3, 4, 5)},
    }
    times: dict[str, list[float]] = {k: [] for k in configs}
    try:
        for phase, fn in configs.values():  # warm-up: connections, pools, caches
            if phase is not None:
                _set_phase(store, phase)
                _follow(client, phase)
            for i in range(50):
                fn(i)
        for r in range(ROUNDS):
            order = list(configs.items())
            if r % 2:
                order.reverse()
            for name, (phase, fn) in order:
                if phase is not None:
                    _set_phase(store, phase)
                    _follow(client, phase)
                for j in range(PER_ROUND):
                    i = (r * PER_ROUND + j) % ROWS
                    t0 = time.perf_counter()
                    fn(i)
                    times[name].append(time.perf_counter() - t0)
    finally:
        client.close()
        direct.close()
    return _report(times)


def _follow(client: Any, phase: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while client.phase.phase != phase:
        if time.monotonic() > deadline:
            raise TimeoutError(f"client did not follow phase {phase}")
        time.sleep(0.01)


def _report(times: dict[str, list[float]]) -> dict[str, Any]:
    p50 = {k: statistics.median(v) * 1000 for k, v in times.items()}
    p99 = {k: _pct(v, 0.99) * 1000 for k, v in times.items()}
    out: dict[str, Any] = {"gets_per_config": len(times["pymysql"])}
    print(f"{'configuration':<16}{'p50 ms':>9}{'p99 ms':>9}{'p50 overhead ms':>17}")
    for k in times:
        baseline = "pymysql" if k in ("pymysql", "client_phase1", "client_phase2") else "boto3"
        if k == "client_phase3":
            over = ""
        else:
            over = f"{p50[k] - p50[baseline]:+.3f}"
            out[f"{k}_p50_overhead_ms"] = round(p50[k] - p50[baseline], 3)
        out[f"{k}_p50_ms"], out[f"{k}_p99_ms"] = round(p50[k], 3), round(p99[k], 3)
        print(f"{k:<16}{p50[k]:>9.3f}{p99[k]:>9.3f}{over:>17}")
    bound = max(p99["pymysql"], p99["boto3"]) + 1.0
    out["phase3_p99_bound_ms"] = round(bound, 3)
    out["phase3_p99_within_bound"] = p99["client_phase3"] <= bound
    out["phase3_p99_over_bound_ratio"] = round(p99["client_phase3"] / bound, 3)
    for n in (1, 2, 4, 5):
        out[f"phase{n}_p50_overhead_within_0_3ms"] = out[f"client_phase{n}_p50_overhead_ms"] <= 0.3
    print(f"phase 3 p99 {p99['client_phase3']:.3f} ms vs bound max(MySQL p99, DynamoDB p99) + 1 ms "
          f"= {bound:.3f} ms")
    return out


if __name__ == "__main__":
    print(main())

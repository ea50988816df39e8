"""Reverse replication throughput: DynamoDB Streams -> MySQL items/s against a bare loop.

Same run, same stream, same MySQL table, same statements:
- baseline: a bare loop -- GetRecords (1000 per call) from the oldest record, each NEW image
  turned into parameters by hand, one PyMySQL ``executemany`` of the same
  ``INSERT ... ON DUPLICATE KEY UPDATE`` per page, one commit per page;
- the reverse replication (``consumers.reverse``): the same reads, the origin filter, the inverse
  mapping, the MySQL fit check, coalescing, the rows' versions (read FOR UPDATE and written with
  the rows), the upserts, a checkpoint marker per page and the heartbeat in the control store,
  until it reports itself caught up.
The MySQL table is emptied before every pass and the reverse replication starts each pass
without a checkpoint, so each pass applies the whole stream. Passes alternate (baseline
first, then reverse first) so drift on this shared machine hits both alike. Target: the
reverse replication at >= 0.8 x the bare loop.

Run with the stack's environment: ``.venv/bin/python -m bench bench_reverse``
(``BENCH_REVERSE_KEY=moving``: a key over another column, the versions-table path).
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time
import uuid
from decimal import Decimal
from typing import Any

from bench.common import admin_mysql, remove_run
from bench.deadline import Deadline
from consumers.reverse.runner import ReverseOptions
from consumers.reverse.service import reverse_session
from consumers.writer.tables import TableSpec, ensure_tables
from replicator.adapters.dynamodb import dynamodb_client, dynamodbstreams_client
from replicator.adapters.mysql import connect as mysql_connect
from replicator.control import names, open_control_store
from replicator.events import Temporal
from replicator.logs import configure_logging
from replicator.mapping import ORIGIN_APP, TableMapper
from replicator.mapping.conditional import metadata
from replicator.settings import LogSettings, load_settings

ITEMS = int(os.environ.get("BENCH_REVERSE_ITEMS", "5000"))
#: ``pk`` (default): items keyed by the primary key, each row always one item. ``moving``: keyed
#: over another column too (``USER#{id}`` / ``EMAIL#{email}``), so its rows could move between
#: items and the reverse orders them through the versions table (read FOR UPDATE, written with
#: the rows): that path's cost against the same bare loop.
KEY = os.environ.get("BENCH_REVERSE_KEY", "pk")
MAPPING: dict[str, Any] = {} if KEY == "pk" else {"target": "users", "key": {"pk": "USER#{id}",
                                                                             "sk": "EMAIL#{email}"}}
PASSES = int(os.environ.get("BENCH_REVERSE_PASSES", "3"))
PASS_DEADLINE_S = 60 + ITEMS / 100  # per pass; 100 items/s is far below any rate measured here
BUDGET_S = (2 * PASSES + 2) * PASS_DEADLINE_S  # bench/__main__.py's watchdog
COLUMNS = (("id", "bigint(20)"), ("email", "varchar(255)"), ("name", "varchar(255)"),
           ("balance", "decimal(12,2)"), ("visits", "int(11)"), ("created", "datetime(6)"),
           ("bio", "text"), ("active", "tinyint(1)"))
DDL = ("CREATE TABLE users (id BIGINT PRIMARY KEY, email VARCHAR(255) NOT NULL, name VARCHAR(255), "
       "balance DECIMAL(12,2), visits INT, created DATETIME(6), bio TEXT, active TINYINT(1))")


def _row(key: int) -> dict[str, Any]:
    return {"id": key, "email": f"user{key}@example.com", "name": f"User {key}",
            "balance": Decimal(key * 7).scaleb(-2), "visits": key % 100,
            "created": Temporal("datetime", "2024-01-31T10:00:00.123456"), "bio": "x" * 200, "active": 1}


class Bench:
    def __init__(self) -> None:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        self.unique = "br" + uuid.uuid4().hex[:8]
        base = load_settings()
        admin = admin_mysql(base)
        self.settings = load_settings(
            kafka={"topic_prefix": self.unique}, dynamodb={"table_prefix": f"{self.unique}-"},
            control={"namespace": self.unique}, tables=[{"source": f"{self.unique}.users", **MAPPING}],
            client={"mysql_user": admin.user, "mysql_password": admin.password.get_secret_value()},
            cutover={"reverse_versions_table": f"{self.unique}.reverse_versions"},
            log={"level": "warning"})
        self.mapper = TableMapper(self.settings.tables[0], COLUMNS, ("id",))
        self.table = f"{self.unique}-users"
        self.ddb = dynamodb_client(self.settings.dynamodb)
        self.admin = mysql_connect(admin_mysql(self.settings), autocommit=True)

    def setup(self) -> None:
        with self.admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{self.unique}`")
            cur.execute(f"USE `{self.unique}`")
            cur.execute(DDL)
        ensure_tables(self.ddb, [TableSpec(self.table, f"{self.unique}.users", self.mapper.key_attributes)],
                      create=True)
        version = 1 << 52 | time.time_ns() // 1000
        items = [self.mapper.to_item(_row(k), metadata=metadata(version + k, ORIGIN_APP))
                 for k in range(ITEMS)]
        deadline = Deadline(PASS_DEADLINE_S, f"BatchWriteItem of {ITEMS} application writes")
        for start in range(0, len(items), 25):
            pending = [{"PutRequest": {"Item": i}} for i in items[start:start + 25]]
            while pending:
                deadline.check(f"{start} written")
                out = self.ddb.batch_write_item(RequestItems={self.table: pending})
                pending = out.get("UnprocessedItems", {}).get(self.table, [])

    def teardown(self) -> None:
        self.admin.close()
        remove_run(self.settings, self.unique)

    def _empty(self) -> None:
        with self.admin.cursor() as cur:
            cur.execute(f"TRUNCATE TABLE `{self.unique}`.users")
            # The rows' versions too: else a pass would find every change already applied.
            cur.execute(f"DROP TABLE IF EXISTS `{self.unique}`.reverse_versions")
        with open_control_store(self.settings) as store:
            for name in store.list_markers(names.REVERSE_CHECKPOINT_PREFIX):
                store.delete_marker(name)

    def _count(self) -> int:
        with self.admin.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM `{self.unique}`.users")
            return int(cur.fetchone()[0])

    # ----------------------------------------------------------------- the two contenders

    def bare(self) -> float:
        """GetRecords -> hand-made parameters -> executemany, one commit per page; items/s."""
        self._empty()
        streams = dynamodbstreams_client(self.settings.dynamodb)
        arn = self.ddb.describe_table(TableName=self.table)["Table"]["LatestStreamArn"]
        conn = mysql_connect(admin_mysql(self.settings), database=self.unique, autocommit=False, utc=True)
        sql = ("INSERT INTO users (`id`, `email`, `name`, `balance`, `visits`, `created`, `bio`, `active`) "
               "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE `email` = VALUES(`email`), "
               "`name` = VALUES(`name`), `balance` = VALUES(`balance`), `visits` = VALUES(`visits`), "
               "`created` = VALUES(`created`), `bio` = VALUES(`bio`), `active` = VALUES(`active`)")
        started = time.perf_counter()
        applied = 0
        shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        deadline = Deadline(PASS_DEADLINE_S, f"the bare loop to apply {ITEMS} stream records")
        for shard in shards:
            it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                            ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            while it:
                deadline.check(f"{applied} applied")
                out = streams.get_records(ShardIterator=it, Limit=1000)
                records = out.get("Records", [])
                if not records:
                    break
                params = []
                for rec in records:
                    i = rec["dynamodb"]["NewImage"]
                    params.append((int(i["id"]["N"]), i["email"]["S"], i["name"]["S"],
                                   Decimal(i["balance"]["N"]), int(i["visits"]["N"]),
                                   dt.datetime.fromisoformat(i["created"]["S"]), i["bio"]["S"],
                                   int(i["active"]["N"])))
                with conn.cursor() as cur:
                    cur.executemany(sql, params)
                conn.commit()
                applied += len(params)
                it = out.get("NextShardIterator")
        elapsed = time.perf_counter() - started
        conn.close()
        assert applied == ITEMS and self._count() == ITEMS, (applied, self._count())
        return applied / elapsed

    def reverse(self) -> float:
        """The reverse replication from no checkpoint until caught up; items/s."""
        self._empty()
        opts = ReverseOptions(poll_interval_s=0.01, settle_s=0.0)
        with reverse_session(self.settings, options=opts) as rev:
            started = time.perf_counter()
            deadline = Deadline(PASS_DEADLINE_S, f"the reverse replication to apply {ITEMS} items")
            while not (rev.progress.caught_up and rev.progress.applied_total >= ITEMS):
                deadline.check(f"{rev.progress.applied_total} applied")
                rev.step()
            elapsed = time.perf_counter() - started
        assert self._count() == ITEMS
        return ITEMS / elapsed


def main() -> dict[str, Any]:
    configure_logging(LogSettings(level="warning"))
    bench = Bench()
    try:
        t0 = time.monotonic()
        bench.setup()
        print(f"stream of {ITEMS} application writes ready in {time.monotonic() - t0:.1f} s")
        bench.bare()  # warm-up: connections, caches
        bare: list[float] = []
        rev: list[float] = []
        for p in range(PASSES):
            order = [("bare", bench.bare), ("reverse", bench.reverse)]
            for name, fn in (order if p % 2 == 0 else order[::-1]):
                (bare if name == "bare" else rev).append(fn())
        return _report(bare, rev)
    finally:
        bench.teardown()


def _report(bare: list[float], rev: list[float]) -> dict[str, Any]:
    b, r = statistics.median(bare), statistics.median(rev)
    ratio = r / b
    print(f"{'pass':<6}{'bare items/s':>14}{'reverse items/s':>17}{'ratio':>8}")
    for i, (x, y) in enumerate(zip(bare, rev, strict=True)):
        print(f"{i:<6}{x:>14.0f}{y:>17.0f}{y / x:>8.2f}")
    print(f"median: bare {b:.0f} items/s, reverse {r:.0f} items/s, ratio {ratio:.2f} (target >= 0.8: "
          f"{'met' if ratio >= 0.8 else 'NOT met'})")
    return {"items": ITEMS, "passes": PASSES, "key": KEY, "bare_items_per_s": round(b),
            "reverse_items_per_s": round(r),
            "ratio": round(ratio, 3),
            "ratio_per_pass": [round(y / x, 3) for x, y in zip(bare, rev, strict=True)],
            "target_ratio": 0.8, "target_met": ratio >= 0.8}


if __name__ == "__main__":
    print(main())

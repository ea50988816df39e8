"""The demo: its workload generator, its injected comparison and application, the client's figures it
reads, and the whole story on the real stack."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from replicator.adapters import kafka
from replicator.client.metrics import ClientMetrics
from replicator.demo import Demo, DemoOptions, SampleApp
from replicator.demo.app import ClientFigures
from replicator.demo.cleanup import delete_dynamodb_tables
from replicator.demo.printing import load_table, visit_line
from replicator.demo.workload import (
    FIRST_LIVE_ORDER_ID,
    ITEM_IDS_PER_ORDER,
    DeleteUser,
    InsertUser,
    Operation,
    OrderLine,
    PlaceOrder,
    RekeyUser,
    ShopWorkload,
    TouchUser,
    seed,
    statements,
)
from replicator.diff import Difference
from replicator.settings import Settings, load_settings
from tests.conftest import admin_connect

# --------------------------------------------------------------------------- the workload, pure


def test_the_same_seed_gives_the_same_operations() -> None:
    a, b = ShopWorkload(random.Random(7), 101), ShopWorkload(random.Random(7), 101)
    assert [a.next_operation() for _ in range(500)] == [b.next_operation() for _ in range(500)]


def test_new_and_rekeyed_users_take_fresh_ids_in_order() -> None:
    w = ShopWorkload(random.Random(1), 11)
    taken = []
    for _ in range(2000):
        op = w.next_operation()
        if isinstance(op, InsertUser):
            taken.append(op.id)
        elif isinstance(op, RekeyUser):
            taken.append(op.new_id)
            assert op.id < op.new_id
    assert taken == list(range(11, 11 + len(taken)))
    assert w.next_id == 11 + len(taken)


def test_the_mix_has_every_kind_of_change_in_its_stated_share() -> None:
    w = ShopWorkload(random.Random(3), 1001)
    kinds = Counter(type(w.next_operation()).__name__ for _ in range(20_000))
    share = {k: n / 20_000 for k, n in kinds.items()}
    expected = {"InsertUser": 0.35, "TouchUser": 0.40, "PlaceOrder": 0.15, "DeleteUser": 0.07,
                "RekeyUser": 0.03}
    assert share.keys() == expected.keys()
    for kind, p in expected.items():
        assert abs(share[kind] - p) < 0.02, (kind, share[kind])


def test_each_statement_has_one_placeholder_per_parameter() -> None:
    ops: list[Operation] = [InsertUser(1, "a@x", None, "1"), TouchUser(1, 5),
                            PlaceOrder(9, 1, (OrderLine("A", 1, "1.50"),)), DeleteUser(1), RekeyUser(1, 2)]
    for op in ops:
        for sql, params in statements(op):
            assert sql.count("%s") == len(params), op


def test_an_order_is_its_row_then_its_items_rows_numbered_in_the_order_under_its_user() -> None:
    op = PlaceOrder(7, 3, (OrderLine("A", 2, "1.25"), OrderLine("B", 1, "10.00")), "note")
    (order_sql, order), *items = statements(op)
    assert "INTO orders" in order_sql and order == (7, 3, "12.50", "note")
    assert all("INTO order_items" in sql for sql, _ in items)
    assert [params for _, params in items] == [(7 * ITEM_IDS_PER_ORDER + 1, 7, 3, "A", 2, "1.25"),
                                               (7 * ITEM_IDS_PER_ORDER + 2, 7, 3, "B", 1, "10.00")]


def test_the_seed_has_users_then_twice_as_many_orders_of_existing_users_with_one_to_three_items() -> None:
    ops = list(seed(10))
    users = [op for op in ops if isinstance(op, InsertUser)]
    orders = [op for op in ops if isinstance(op, PlaceOrder)]
    assert ops == users + orders
    assert [u.id for u in users] == list(range(1, 11)) and len(orders) == 20
    assert {o.user_id for o in orders} <= {u.id for u in users}
    assert {len(o.items) for o in orders} == {1, 2, 3}
    item_ids = [i for o in orders for i in o.item_ids()]
    assert len(set(item_ids)) == len(item_ids)
    assert all(Decimal(o.total) == sum(line.qty * Decimal(line.price) for line in o.items) > 0
               for o in orders)


def test_live_orders_take_unique_ids_above_the_seed_and_are_read_back_with_their_user() -> None:
    w = ShopWorkload(random.Random(4), 11)
    orders = [op for op in (w.next_operation() for _ in range(2000)) if isinstance(op, PlaceOrder)]
    assert [o.id for o in orders] == list(range(FIRST_LIVE_ORDER_ID, FIRST_LIVE_ORDER_ID + len(orders)))
    assert {len(o.items) for o in orders} == {1, 2, 3}
    seeded = {(o.id, o.user_id) for o in seed(10) if isinstance(o, PlaceOrder)}
    placed = {(o.id, o.user_id) for o in orders}
    reads = Counter("placed" if r in placed else "seeded" if r in seeded else "neither"
                    for r in (w.order_to_read() for _ in range(1000)))
    assert reads.keys() == {"placed", "seeded"}, reads


# --------------------------------------------------------------------------- story and cleanup, no I/O


@dataclass(frozen=True)
class FakeReport:
    table: str
    mysql_rows: int
    dynamodb_items: int
    tombstones: int
    differences: list[Difference] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences


def test_the_story_prints_the_figures_of_the_injected_comparison() -> None:
    seen: list[Settings] = []

    def compare(s: Settings) -> list[FakeReport]:
        seen.append(s)
        missing = Difference("shop.orders", "id=5", "missing_in_dynamodb")
        return [FakeReport(s.tables[0].source, 12, 12, 3), FakeReport("shop.orders", 5, 4, 0, [missing])]

    console = Console(record=True, width=200)
    demo = Demo(load_settings(), DemoOptions("admin", ""), compare=compare, app=NO_APP, console=console)
    reports = demo.comparison()
    out = console.export_text()
    assert [r.ok for r in reports] == [True, False]
    assert seen == [demo.settings] and demo.settings.tables[0].source == f"{demo.run_id}.users"
    assert re.search(rf"{demo.run_id}\.users\s+│ 12\s+│ 12\s+│ 3\s+│ 0", out), out
    assert re.search(r"shop\.orders\s+│ 5\s+│ 4\s+│ 0\s+│ 1", out), out


def _not_started(*args: Any) -> Any:
    raise AssertionError("the application is not started by this test")


NO_APP = SampleApp(serve=_not_started, load=_not_started)


def test_the_demo_maps_the_shop_on_one_table_with_the_collection_and_the_embedded_items_it_reads() -> None:
    demo = Demo(load_settings(), DemoOptions("admin", ""), compare=lambda s: [], app=NO_APP)
    db = demo.run_id
    users, orders, items = (demo.settings.table(f"{db}.{t}") for t in ("users", "orders", "order_items"))
    assert users is not None and orders is not None and items is not None
    assert (users.target, users.key.pk, users.key.sk) == ("shop", "USER#{id}", "#PROFILE")
    assert (orders.target, orders.key.pk, orders.key.sk) == ("shop", "USER#{user_id}", "ORDER#{id:012d}")
    assert [(c.name, c.members) for c in users.collections] == [
        ("collection", {f"{db}.orders": {"user_id": "id"}})]
    assert items.embed is not None
    assert (items.embed.parent, items.embed.as_, items.embed.on) == (
        f"{db}.orders", "items", {"order_id": "id", "user_id": "user_id"})
    # The shop's own MySQL user, not the pipeline's; the pipeline's config never carries it.
    assert demo.client_settings.client.mysql_user == f"{demo.run_id}_app" != demo.settings.mysql.user
    assert demo.settings.client.mysql_user is None


def test_client_figures_are_read_from_the_clients_registry_and_subtract() -> None:
    m = ClientMetrics()
    m.validations.labels("passed").inc(5)
    m.read_seconds.labels("dynamodb", "get").observe(0.01)
    before = ClientFigures.of(m.registry)
    m.validations.labels("failed").inc()
    m.read_seconds.labels("dynamodb", "get").observe(0.01)
    m.read_seconds.labels("dynamodb", "query").observe(0.01)
    m.read_seconds.labels("mysql", "get").observe(0.01)
    m.fallbacks.labels("read_your_writes").inc(2)
    now = ClientFigures.of(m.registry)
    assert now.validations == {"passed": 5, "failed": 1}
    between = now.since(before)
    assert (between.reads_from("dynamodb"), between.reads_from("mysql")) == (2, 1)
    assert between.validations == {"passed": 0, "failed": 1}
    assert between.fallbacks == {"read_your_writes": 2}


@dataclass(frozen=True)
class Visit:
    phase: int
    epoch: int
    requests: int = 10
    reads: int = 6
    writes: int = 4
    changes: int = 4
    misses: int = 0
    errors: int = 0
    p50_ms: float = 2.0
    p99_ms: float = 9.5
    error_samples: tuple[str, ...] = ()
    longest_write_ms: float = 12.0


@dataclass(frozen=True)
class Figures:
    visits: tuple[Visit, ...]

    @property
    def requests(self) -> int:
        return sum(v.requests for v in self.visits)

    @property
    def errors(self) -> int:
        return sum(v.errors for v in self.visits)

    @property
    def changes(self) -> int:
        return sum(v.changes for v in self.visits)

    def last(self, phase: int) -> Visit | None:
        return next((v for v in reversed(self.visits) if v.phase == phase), None)


def test_the_load_table_has_a_row_per_phase_visit_and_shows_error_samples() -> None:
    console = Console(record=True, width=200)
    figures = Figures((Visit(1, 0), Visit(2, 1, errors=1, error_samples=("GET /users/5: 503 down",)),
                       Visit(1, 2)))
    load_table(console, figures)
    out = console.export_text()
    assert re.search(r"│\s+2 │\s+1 │\s+10 │\s+6 │\s+4 │\s+0 │\s+1 │\s+2\.0 │\s+9\.5 │", out), out
    assert len(re.findall(r"│\s+1 │\s+[02] │", out)) == 2
    assert "phase 2 error: GET /users/5: 503 down" in out
    assert "p50 2.0 ms, p99 9.5 ms" in visit_line(figures.last(1), 1)


def test_cleanup_never_deletes_tables_without_a_prefix() -> None:
    s = load_settings(dynamodb={"endpoint_url": "http://127.0.0.1:9", "table_prefix": ""})
    delete_dynamodb_tables(s)  # returns before any request: port 9 would refuse it


def test_the_demo_package_imports_no_validators_nor_consumers() -> None:
    code = ("import sys, replicator.demo; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('validators', 'consumers')))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]"


# --------------------------------------------------------------------------- the whole story


@pytest.mark.integration
@pytest.mark.slow
def test_demo_walks_the_phases_with_the_shop_error_free_and_cleans_up(
        isolated_env: dict[str, str], settings: Settings, tmp_path: Path, dynamodb: Any,
        redis_client: Any) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "replicator.cli", "demo", "--rows", "300", "--soak-s", "4",
         "--ops-per-s", "80", "--log-dir", str(tmp_path)],
        # The demo goes to phase 5 and back: the way back reads the tables' streams.
        env={**isolated_env, "COLUMNS": "250", "REPLICATOR_DYNAMODB__STREAMS": "true"},
        capture_output=True, text=True, timeout=600, check=False,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-5000:]
    assert "demo complete" in out
    assert re.search(r"Migration phase 3 -> 4", out) and "emergency rollback" in out
    # The shop ran through every phase with zero errors seen by its users.
    summary = re.search(r"the shop answered (\d+) requests in phases 1 -> 2 -> 3 -> 4 -> (?:4 -> )?5 -> "
                        r"(?:5 -> )?4 -> 1: (\d+) application errors", out)
    assert summary and int(summary.group(1)) > 0 and summary.group(2) == "0", out[-5000:]
    for phase in (1, 2, 3, 4, 5):
        assert re.search(rf"the shop in phase {phase}: \d+ requests .*, 0 errors, latency p50 [\d.]+ ms, "
                         r"p99 [\d.]+ ms", out), phase
    # Phase 3: the client's validations, none failed; none logged as failed either.
    validated = re.search(r"(\d+) validations passed, 0 failed, \d+ unverified", out)
    assert validated and int(validated.group(1)) >= 100, out
    assert re.search(r"validation\.passed=\d+, validation\.failed=0", out)
    assert "Data validation failed" not in out
    # Phase 4: reads served from DynamoDB, and the 4 -> 5 gates passed on the reads measured.
    served = re.search(r"reads served in phase 4 .*: dynamodb (\d+)", out)
    assert served and int(served.group(1)) > 0, out
    gate = re.search(r"4 -> 5 gates: PASSED; DynamoDB read errors 0 % \(0/(\d+) failed\)", out)
    assert gate and int(gate.group(1)) > 0, out[-5000:]
    # The write target went to DynamoDB and back on the switch protocol, the stores equal after
    # each switch, the shop's longest write pause shown without an error.
    assert "Migration phase 4 -> 5: demo: cut over" in out and "Migration phase 5 -> 4" in out
    assert "drain_pipeline" in out and "drain_reverse" in out
    assert len(re.findall(r"what the shop saw: longest write \d+ ms, 0 errors", out)) == 2, out[-5000:]
    assert out.count("MySQL and DynamoDB are equal row for row") == 3
    # Each comparison covers the three tables, the order items entry by entry in their orders' items.
    for table in ("users", "orders", "order_items"):
        compared = re.findall(rf"demo[0-9a-f]{{6}}\.{table}\s+│ (\d+)\s+│ (\d+)\s+│ \d+\s+│ 0 ", out)
        assert len(compared) == 3 and all(int(m) == int(d) > 0 for m, d in compared), (table, out[-5000:])
    assert "cleanup incomplete" not in out
    # Nothing is left behind: the run's database and MySQL user, and its topics, consumer groups,
    # DynamoDB tables and control keys (named by the run's id, or by this test's namespace: the
    # environment wins).
    found = re.search(r"the shop runs on MySQL \((demo[0-9a-f]{6})\)", out)
    assert found, out[:3000]
    names = (found.group(1), isolated_env["REPLICATOR_KAFKA__TOPIC_PREFIX"])
    conn = admin_connect(isolated_env)
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (names[0],))
        assert cur.fetchall() == ()
        cur.execute("SELECT user FROM mysql.user WHERE user = %s", (f"{names[0]}_app",))
        assert cur.fetchall() == ()
    conn.close()
    assert [t for t in dynamodb.list_tables()["TableNames"] if t.startswith(names)] == []
    admin = kafka.admin_client(settings.kafka)
    assert [t for t in admin.list_topics(timeout=10).topics if t.startswith(names)] == []
    groups = admin.list_consumer_groups(request_timeout=10).result().valid
    assert [g.group_id for g in groups if g.group_id.startswith(names)] == []
    for name in names:
        assert list(redis_client.scan_iter(match=f"{name}:*")) == []

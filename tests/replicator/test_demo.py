"""The demo: its workload generator, its injected comparison, and the whole story on the real stack."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from replicator.adapters import kafka
from replicator.demo import Demo, DemoOptions
from replicator.demo.cleanup import delete_dynamodb_tables
from replicator.demo.workload import (
    DeleteUser,
    InsertUser,
    Operation,
    PlaceOrder,
    RekeyUser,
    ShopWorkload,
    TouchUser,
    seed,
    statement,
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
    ops: list[Operation] = [InsertUser(1, "a@x", None, "1"), TouchUser(1, 5), PlaceOrder(9, 1, "1.50"),
                            DeleteUser(1), RekeyUser(1, 2)]
    for op in ops:
        sql, params = statement(op)
        assert sql.count("%s") == len(params), op


def test_the_seed_has_users_then_twice_as_many_orders_of_existing_users() -> None:
    ops = list(seed(10))
    users = [op for op in ops if isinstance(op, InsertUser)]
    orders = [op for op in ops if isinstance(op, PlaceOrder)]
    assert ops == users + orders
    assert [u.id for u in users] == list(range(1, 11)) and len(orders) == 20
    assert {o.user_id for o in orders} <= {u.id for u in users}


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
    demo = Demo(load_settings(), DemoOptions("admin", ""), compare=compare, console=console)
    reports = demo.comparison()
    out = console.export_text()
    assert [r.ok for r in reports] == [True, False]
    assert seen == [demo.settings] and demo.settings.tables[0].source == f"{demo.run_id}.users"
    assert re.search(rf"{demo.run_id}\.users\s+│ 12\s+│ 12\s+│ 3\s+│ 0", out), out
    assert re.search(r"shop\.orders\s+│ 5\s+│ 4\s+│ 0\s+│ 1", out), out


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
def test_demo_walks_the_phases_with_zero_differences_and_cleans_up(
        isolated_env: dict[str, str], settings: Settings, tmp_path: Path, dynamodb: Any,
        redis_client: Any) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "replicator.cli", "demo", "--rows", "300", "--soak-s", "3",
         "--ops-per-s", "30", "--log-dir", str(tmp_path)],
        env=isolated_env, capture_output=True, text=True, timeout=600, check=False,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    assert "demo complete" in out
    assert re.search(r"Migration phase 3 -> 4", out) and "emergency rollback" in out
    # Reconciliation ran on both tables and found nothing.
    assert "Data validation failed" not in out
    assert "cleanup incomplete" not in out
    # Nothing is left behind: the run's database, and its topics, consumer groups, DynamoDB tables
    # and control keys (named by the run's id, or by this test's namespace: the environment wins).
    found = re.search(r"the application runs on MySQL \((demo[0-9a-f]{6})\)", out)
    assert found, out[:3000]
    names = (found.group(1), isolated_env["REPLICATOR_KAFKA__TOPIC_PREFIX"])
    conn = admin_connect(isolated_env)
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE %s", (names[0],))
        assert cur.fetchall() == ()
    conn.close()
    assert [t for t in dynamodb.list_tables()["TableNames"] if t.startswith(names)] == []
    admin = kafka.admin_client(settings.kafka)
    assert [t for t in admin.list_topics(timeout=10).topics if t.startswith(names)] == []
    groups = admin.list_consumer_groups(request_timeout=10).result().valid
    assert [g.group_id for g in groups if g.group_id.startswith(names)] == []
    for name in names:
        assert list(redis_client.scan_iter(match=f"{name}:*")) == []

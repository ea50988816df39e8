"""Phase 3 on the real stack: differences are reported with their class, lag never is."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from replicator.adapters.dynamodb import dynamodb_client
from replicator.control import names
from replicator.mapping import ORIGIN_ATTR, VERSION_ATTR
from tests.replicator.client.conftest import Shop

pytestmark = pytest.mark.integration


def _outcomes(shop: Shop) -> dict[str, float]:
    reg = shop.client.metrics.registry
    return {o: reg.get_sample_value("replicator_client_validations_total", {"outcome": o}) or 0.0
            for o in ("passed", "failed", "unverified")}


def _wait_outcomes(shop: Shop, before: dict[str, float], total: int,
                   timeout_s: float = 20.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    while True:
        now = _outcomes(shop)
        delta = {k: now[k] - before[k] for k in now}
        if sum(delta.values()) >= total or time.monotonic() > deadline:
            return delta
        time.sleep(0.05)


def _seed(shop: Shop) -> int:
    shop.phase(2)
    (uid,) = shop.next_ids(1)
    shop.client.table(shop.users).insert(shop.user(uid))
    assert shop.applied(shop.users)
    return uid


def _plant(shop: Shop, uid: int, **changes: Any) -> None:
    table = shop.client.table(shop.users)
    row = {**table.mapper.to_row(dynamodb_client(shop.settings.dynamodb).get_item(
        TableName=table.target, Key=table.dynamo_key({"id": uid}), ConsistentRead=True)["Item"]), **changes}
    ddb = dynamodb_client(shop.settings.dynamodb)
    stored = ddb.get_item(TableName=table.target, Key=table.mapper.key(row), ConsistentRead=True)["Item"]
    item = table.mapper.to_item(row)
    item[VERSION_ATTR], item[ORIGIN_ATTR] = stored[VERSION_ATTR], stored[ORIGIN_ATTR]
    ddb.put_item(TableName=table.target, Item=item)


@pytest.mark.parametrize(("column", "planted", "kind"), [
    ("created_at", None, "timestamp_precision"),  # the fraction cut: filled in below
    ("name", "", "null_vs_empty"),
    ("balance", None, "number_decimal"),
    ("avatar", b"\x00\x01\xfe", "binary"),
    ("email", "someone-else@example.com", "other"),
])
def test_a_planted_difference_is_logged_with_its_class_counted_and_mysql_returned(
        shop: Shop, column: str, planted: Any, kind: str) -> None:
    from decimal import Decimal

    from replicator.events import Temporal

    uid = _seed(shop)
    users = shop.client.table(shop.users)
    if column == "name":
        users.update({"id": uid}, {"name": None})
        assert shop.applied(shop.users)
    if kind == "timestamp_precision":
        planted = Temporal("datetime", "2024-01-01T12:00:00.000000")
        users.update({"id": uid}, {"created_at": dt.datetime(2024, 1, 1, 12, 0, 0, 123456)})
        assert shop.applied(shop.users)
    if kind == "number_decimal":
        planted = Decimal("10.51")
    _plant(shop, uid, **{column: planted})
    shop.phase(3)
    store_failed = _window(shop, names.VALIDATION_FAILED)
    before = _outcomes(shop)
    with capture_logs() as logs:
        row = users.get({"id": uid})
        delta = _wait_outcomes(shop, before, 1)
    direct = shop.mysql_row("users", uid)
    assert row is not None and direct is not None
    assert row[column] == direct[column]  # MySQL's value is returned, not the planted one
    assert delta["failed"] == 1, delta
    failures = [e for e in logs if e.get("marker") == "Data validation failed"]
    assert failures and failures[0]["fields"] == {column: kind}
    assert failures[0]["table"] == shop.users
    shop.client.counters.flush()
    assert _window(shop, names.VALIDATION_FAILED) == store_failed + 1


def _window(shop: Shop, name: str) -> int:
    now = time.time()
    return shop.store.window_sum(name, now - 3600, now + 60)


def test_rows_that_agree_count_as_passed_validations_absent_ones_too(shop: Shop) -> None:
    uid = _seed(shop)
    shop.phase(3)
    before = _outcomes(shop)
    shop.client.table(shop.users).get_many([{"id": uid}, {"id": -5}])
    delta = _wait_outcomes(shop, before, 2)
    assert delta == {"passed": 2, "failed": 0, "unverified": 0}


@pytest.fixture()
def writer_stopped(shop: Shop) -> Iterator[None]:
    """The DynamoDB writer frozen (SIGSTOP): the pipeline lags for as long as the test wants."""
    pid = shop.pipeline.procs["writer"].pid
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def test_replication_lag_is_never_counted_as_a_validation_failure(shop: Shop, writer_stopped: None) -> None:
    shop.phase(3)
    users = shop.client.table(shop.users)
    ids = shop.next_ids(5)
    before = _outcomes(shop)
    for uid in ids:
        users.insert(shop.user(uid))
        users.update({"id": uid}, {"name": "changed while the writer is held back"})
        assert users.get({"id": uid})["name"] == "changed while the writer is held back"
    delta = _wait_outcomes(shop, before, len(ids), timeout_s=30)
    assert delta["failed"] == 0, delta
    assert delta["unverified"] == len(ids), delta


def test_read_your_writes_in_phase_4_with_the_writer_held_back_falls_back_to_mysql(
        shop: Shop, writer_stopped: None) -> None:
    shop.phase(4)
    users = shop.client.table(shop.users)
    fallbacks = shop.client.metrics.fallbacks.labels("read_your_writes")
    before = fallbacks._value.get()
    (uid,) = shop.next_ids(1)
    users.insert(shop.user(uid, name="just written"))
    assert users.get({"id": uid})["name"] == "just written"
    assert fallbacks._value.get() == before + 1


def test_read_your_writes_in_phase_4_waits_for_a_slowed_writer_and_reads_dynamodb(shop: Shop) -> None:
    shop.phase(4)
    users = shop.client.table(shop.users)
    dynamo_reads = shop.client.metrics.read_seconds.labels("dynamodb", "get")
    fallbacks = shop.client.metrics.fallbacks.labels("read_your_writes")
    (uid,) = shop.next_ids(1)
    pid = shop.pipeline.procs["writer"].pid
    for round_ in range(3):
        os.kill(pid, signal.SIGSTOP)  # an injected delay: the writer resumes 300 ms after the write
        try:
            if round_ == 0:
                users.insert(shop.user(uid, name="v0"))
            else:
                users.update({"id": uid}, {"name": f"v{round_}"})
        finally:
            timer = _resume_after(pid, 0.3)
        reads_before, fb_before = _count(dynamo_reads), fallbacks._value.get()
        assert users.get({"id": uid})["name"] == f"v{round_}"
        timer.join()
        assert _count(dynamo_reads) == reads_before + 1 and fallbacks._value.get() == fb_before


def _count(histogram: Any) -> float:
    return float(sum(b.get() for b in histogram._buckets))


def _resume_after(pid: int, seconds: float) -> Any:
    import threading

    t = threading.Timer(seconds, os.kill, (pid, signal.SIGCONT))
    t.start()
    return t

"""Routing per phase, on the real stack: which store each operation reads and writes.

To tell the stores apart, a test plants a different value directly in DynamoDB (the pipeline
never touches a row that does not change in MySQL) and looks at which one comes back, and
looks in each store after a write.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from typing import Any

import pytest

from replicator.adapters.dynamodb import dynamodb_client
from replicator.events import split_version
from replicator.mapping import ORIGIN_ATTR, VERSION_ATTR
from replicator.mapping.conditional import upsert
from tests.replicator.client.conftest import Shop

pytestmark = pytest.mark.integration


def _seed(shop: Shop, n: int = 1) -> list[int]:
    shop.phase(2)
    ids = shop.next_ids(n)
    for uid in ids:
        shop.client.table(shop.users).insert(shop.user(uid))
    # The writer may first have a backlog to apply: writes the tests before made in phase 1,
    # where it pauses (a shared 2-core machine took more than 30 s for it once).
    assert shop.applied(shop.users, timeout_s=90)
    return ids


def _plant(shop: Shop, uid: int, **changes: Any) -> None:
    """Overwrite the user's DynamoDB item (not MySQL) through the mapping."""
    table = shop.client.table(shop.users)
    row = table.values({**shop.user(uid), **changes})
    item = table.mapper.to_item(row)
    ddb = dynamodb_client(shop.settings.dynamodb)
    stored = ddb.get_item(TableName=table.target, Key=table.mapper.key(row), ConsistentRead=True)["Item"]
    item[VERSION_ATTR] = stored[VERSION_ATTR]
    item[ORIGIN_ATTR] = stored[ORIGIN_ATTR]
    ddb.put_item(TableName=table.target, Item=item)


@pytest.mark.parametrize("phase", [1, 2, 3])
def test_reads_in_phases_1_to_3_return_mysql(shop: Shop, phase: int) -> None:
    (uid,) = _seed(shop)
    _plant(shop, uid, name="only in dynamodb")
    shop.phase(phase)
    users = shop.client.table(shop.users)
    assert users.get({"id": uid})["name"] == f"User {uid}"
    assert users.get_many([{"id": uid}])[0]["name"] == f"User {uid}"
    assert [r["name"] for r in users.query("by_email", {"email": f"u{uid}@example.com"})] == [f"User {uid}"]


@pytest.mark.parametrize("phase", [4, 5])
def test_reads_in_phases_4_and_5_return_dynamodb(shop: Shop, phase: int) -> None:
    (uid,) = _seed(shop)
    _plant(shop, uid, name="only in dynamodb")
    shop.phase(phase)
    users = shop.client.table(shop.users)
    assert users.get({"id": uid})["name"] == "only in dynamodb"
    assert users.get_many([{"id": uid}, {"id": -1}]) == [users.get({"id": uid}), None]
    found = users.query("by_email", {"email": f"u{uid}@example.com"})
    assert [r["name"] for r in found] == ["only in dynamodb"]


@pytest.mark.parametrize("phase", [1, 2, 3, 4])
def test_writes_in_phases_1_to_4_go_to_mysql_only(shop: Shop, phase: int) -> None:
    (uid,) = _seed(shop)
    shop.phase(phase)
    users = shop.client.table(shop.users)
    users.update({"id": uid}, {"name": f"renamed in {phase}"})
    assert shop.mysql_row("users", uid)["name"] == f"renamed in {phase}"
    (new,) = shop.next_ids(1)
    assert users.insert(shop.user(new)) == {"id": new}
    assert shop.mysql_row("users", new) is not None
    assert users.delete({"id": new}) == 1
    assert shop.mysql_row("users", new) is None


def test_phase_5_writes_go_to_dynamodb_only_as_application_writes(shop: Shop) -> None:
    (uid,) = _seed(shop)
    shop.phase(5)
    users = shop.client.table(shop.users)
    assert users.update({"id": uid}, {"name": "phase five"}) == 1
    assert shop.mysql_row("users", uid)["name"] == f"User {uid}"  # MySQL untouched
    item = dynamodb_client(shop.settings.dynamodb).get_item(
        TableName=users.target, Key=users.dynamo_key({"id": uid}), ConsistentRead=True)["Item"]
    assert item[ORIGIN_ATTR] == {"S": "app"}
    generation, _ = split_version(int(item[VERSION_ATTR]["N"]))
    assert generation == shop.client.phase.generation and generation % 2 == 1  # DynamoDB's generation
    assert users.get({"id": uid})["name"] == "phase five"
    (new,) = shop.next_ids(1)
    users.insert(shop.user(new, name="born in five"))
    assert shop.mysql_row("users", new) is None
    assert users.get({"id": new})["name"] == "born in five"
    assert users.delete({"id": new}) == 1
    assert users.get({"id": new}) is None
    assert users.delete({"id": new}) == 0


def test_a_replayed_older_cdc_event_does_not_overwrite_a_phase_5_write(shop: Shop) -> None:
    (uid,) = _seed(shop)
    shop.phase(5)
    users = shop.client.table(shop.users)
    users.update({"id": uid}, {"name": "application wins"})
    # The newest event the old direction could ever carry for this row, replayed late:
    newest_cdc = (shop.client.phase.generation << 52) - 1
    late = upsert(users.mapper, users.target, users.values(shop.user(uid, name="late cdc")),
                  version=newest_cdc, origin="cdc")
    ddb = dynamodb_client(shop.settings.dynamodb)
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.put_item(**late.put_item_params())
    assert users.get({"id": uid})["name"] == "application wins"


def test_rows_come_back_in_pymysql_types_from_either_store(shop: Shop) -> None:
    (uid,) = _seed(shop)
    users = shop.client.table(shop.users)
    shop.phase(2)
    from_mysql = users.get({"id": uid})
    shop.phase(4)
    from_dynamodb = users.get({"id": uid})
    assert from_mysql == from_dynamodb
    assert from_mysql is not None
    assert isinstance(from_mysql["balance"], Decimal) and from_mysql["balance"] == Decimal("10.50")
    assert isinstance(from_mysql["created_at"], dt.datetime)
    assert from_mysql["avatar"] == b"\x00\x01\xff"
    assert from_mysql["prefs"] == '{"lang": "fr"}'
    direct = shop.mysql_row("users", uid)
    assert direct is not None
    for column in ("id", "email", "name", "balance", "created_at", "avatar"):
        assert from_dynamodb[column] == direct[column], column


def test_a_multi_row_transaction_is_atomic_in_mysql_and_in_dynamodb(shop: Shop) -> None:
    from replicator.errors import DuplicateKeyError

    for phase in (2, 5):
        shop.phase(phase)
        a, b = shop.next_ids(2)
        with pytest.raises(DuplicateKeyError), shop.client.transaction() as tx:
            tx.table(shop.users).insert(shop.user(a))
            tx.table(shop.users).insert(shop.user(b, email=f"u{a}@example.com") if phase == 2
                                        else shop.user(a))
        assert shop.client.table(shop.users).get({"id": a}) is None, f"phase {phase}: half a transaction"
        with shop.client.transaction() as tx:
            tx.table(shop.users).insert(shop.user(a))
            tx.table(shop.orders).insert({"id": a, "user_id": a, "total": Decimal("3.00"), "status": "new",
                                          "created_at": dt.datetime(2024, 5, 1)})
        assert shop.client.table(shop.orders).get({"id": a})["total"] == Decimal("3.00")


def test_a_row_written_in_phase_1_is_read_back_in_phase_4_even_before_the_pipeline_applied_it(
        shop: Shop) -> None:
    # The writer pauses in phase 1; a walk forward to 4 can be quicker than its catching up. The
    # client remembers phase-1 writes too: the read waits for the pipeline or is served by MySQL.
    shop.phase(1)
    (uid,) = shop.next_ids(1)
    users = shop.client.table(shop.users)
    users.insert(shop.user(uid, name="written in phase 1"))
    shop._set(4)  # straight to 4, as fast as a forced walk can go
    deadline = time.monotonic() + 10
    while shop.client.phase.phase != 4:
        assert time.monotonic() < deadline, "the client did not follow phase 4"
        time.sleep(0.005)
    row = users.get({"id": uid})
    assert row is not None and row["name"] == "written in phase 1"

"""Switching the write target under live traffic (DESIGN §3.6, invariant 7), on the real stack:
reader, writer and reverse replication running, eight client threads writing and reading."""

from __future__ import annotations

import time
from typing import Any

import pytest

from replicator.adapters.dynamodb import dynamodb_client
from replicator.client import connect
from replicator.errors import WriteFrozenError
from tests.replicator.client.conftest import Shop
from tests.replicator.client.test_phase_walk import THREADS, Worker, stop_workers

pytestmark = pytest.mark.integration


def _equal_row_for_row(shop: Shop, user_ids: list[int]) -> None:
    """MySQL and DynamoDB hold the same rows for these users and their orders (through the
    mapping), once both directions settled. Only this test's rows: others plant differences."""
    if shop.store.get_phase().phase != 5:  # in phase 5 the pipeline stands still: DynamoDB leads
        assert shop.applied(shop.users) and shop.applied(shop.orders)
    shop.reverse_caught_up()
    users, orders = shop.client.table(shop.users), shop.client.table(shop.orders)
    keys = [{"id": uid} for uid in user_ids]
    mysql, dynamo = users._mysql_rows(keys), users._dynamo_rows(keys, count=False)
    differ = [(k, m, d) for k, m, d in zip(keys, mysql, dynamo, strict=True) if m != d]
    assert not differ, differ[:3]
    by_user = orders.mapper.index("by_user")
    for uid in user_ids:
        values = orders.values({"user_id": uid})
        assert orders._mysql_query(by_user, values) == orders._dynamo_query(by_user, values, count=False), uid


def _settled(workers: list[Worker]) -> None:
    """Hold every worker between two operations (bounded)."""
    for w in workers:
        w.hold.set()
    deadline = time.monotonic() + 30
    for w in workers:
        assert w.idle.wait(max(0.0, deadline - time.monotonic())), "a worker did not come to rest"


def test_4_5_4_5_4_1_under_eight_threads_loses_nothing_and_the_stores_stay_equal(shop: Shop) -> None:
    shop.phase(4)
    workers = [Worker(shop, shop.next_ids(30), seed) for seed in range(100, 100 + THREADS)]
    for w in workers:
        w.start()
    pauses: list[float] = []
    try:
        for target in (5, 4, 5, 4):
            time.sleep(1.0)
            t0 = time.monotonic()
            shop.phase(target)
            pauses.append(time.monotonic() - t0)
            time.sleep(0.5)  # writes go on in the new phase, then settle for the comparison
            _settled(workers)
            _equal_row_for_row(shop, [uid for w in workers for uid in w.ids])
            for w in workers:
                w.hold.clear()
        time.sleep(1.0)
    finally:
        errors = stop_workers(workers)
    assert not errors, errors[:5]
    assert sum(w.ops for w in workers) > THREADS * 10
    _equal_row_for_row(shop, [uid for w in workers for uid in w.ids])
    users = shop.client.table(shop.users)
    for w in workers:  # every acknowledged write, with its last value, in both stores
        for uid, name in w.expected.items():
            row = shop.mysql_row("users", uid)
            assert (row["name"] if row else None) == name, uid
            got = users.get({"id": uid})  # phase 4: from DynamoDB
            assert (got["name"] if got else None) == name, uid
    shop.phase(1)
    assert shop.client.phase.phase == 1
    longest = max(w.ops for w in workers)
    assert longest > 0 and max(pauses) < 60, pauses


def test_a_stale_client_cannot_commit_to_mysql_after_the_switch(shop: Shop) -> None:
    shop.phase(4)
    (uid,) = shop.next_ids(1)
    shop.client.table(shop.users).insert(shop.user(uid, name="before"))
    stale = connect(shop.settings, name="stale")
    try:
        stale_users = stale.table(shop.users)
        believed = stale.phase
        shop.phase(5)  # it acknowledged the freeze (its lease is live) ...
        stale._watcher.stop()  # ... and then its watcher stalled before it heard of the flip:
        stale._state = believed
        stale.gate.update(believed)
        assert stale.phase.phase == 4  # it still believes MySQL takes the writes
        stale_users.update({"id": uid}, {"name": "from the stale client"})
        # The fence refused MySQL; the client learned the phase and wrote where writes go now.
        assert shop.mysql_row("users", uid)["name"] == "before"
        assert stale.phase.phase == 5
        assert shop.client.table(shop.users).get({"id": uid})["name"] == "from the stale client"
    finally:
        stale.close()
        shop.phase(4)


def test_a_client_whose_lease_lapsed_refuses_to_write(shop: Shop) -> None:
    shop.phase(4)
    lapsed = connect(shop.settings, name="lapsed")
    try:
        lapsed.lease._valid_until = 0.0  # as if the control store had been unreachable for long
        lapsed.lease._stop.set()
        with pytest.raises(WriteFrozenError, match="lease"):
            lapsed.table(shop.users).insert(shop.user(shop.next_ids(1)[0]))
    finally:
        lapsed.close()


def test_an_item_mysql_cannot_hold_blocks_the_way_back_by_name(shop: Shop) -> None:
    from replicator.errors import SwitchAborted, TransitionError

    shop.phase(5)
    users = shop.client.table(shop.users)
    (uid,) = shop.next_ids(1)
    users.insert(shop.user(uid))
    table = users.target
    ddb = dynamodb_client(shop.settings.dynamodb)
    item: dict[str, Any] = ddb.get_item(TableName=table, Key=users.dynamo_key({"id": uid}),
                                        ConsistentRead=True)["Item"]
    item["name"] = {"S": "x" * 500}  # longer than VARCHAR(80): MySQL cannot take it back
    item["_version"] = {"N": str(int(item["_version"]["N"]) + 1)}
    ddb.put_item(TableName=table, Item=item)
    deadline = time.monotonic() + 60
    while not int((shop.store.get_marker("reverse.heartbeat") or {}).get("deadletters", 0)):
        assert time.monotonic() < deadline, "the reverse replication did not dead-letter the item"
        time.sleep(0.2)
    with pytest.raises((TransitionError, SwitchAborted), match=f"id={uid}"):
        shop.switch().run(4, actor="test", reason="test")
    assert shop.store.get_phase().phase == 5
    # A later application write that MySQL can hold clears the dead letter, and the way back opens.
    users.update({"id": uid}, {"name": "short again"})
    deadline = time.monotonic() + 60
    while int((shop.store.get_marker("reverse.heartbeat") or {}).get("deadletters", 0)):
        assert time.monotonic() < deadline, "a fixing write did not clear the dead letter"
        time.sleep(0.2)
    shop.phase(4)
    assert shop.mysql_row("users", uid)["name"] == "short again"


def test_an_overrun_drain_aborts_to_an_unfrozen_phase_4_and_loses_nothing(shop: Shop) -> None:
    import signal

    from replicator.errors import SwitchAborted
    from replicator.phase.switch import SwitchProtocol
    from replicator.phase.switch_io import StoreDrains, StoreFences

    shop.phase(4)
    users = shop.client.table(shop.users)
    ids = shop.next_ids(6)
    for uid in ids[:3]:
        users.insert(shop.user(uid, name="before the switch"))
    writer = shop.pipeline.procs["writer"]
    writer.send_signal(signal.SIGSTOP)  # the writer stalls: the drain to the fence cannot finish
    try:
        fences, drains = StoreFences(shop.settings), StoreDrains(shop.settings, shop.store)
        switch = SwitchProtocol(shop.store, fences, drains, max_pause_s=1.5)
        with pytest.raises(SwitchAborted, match="nothing was lost"):
            switch.run(5, actor="test", reason="test")
        state = shop.store.get_phase()
        assert state.phase == 4 and not state.frozen
        assert "aborted" in shop.store.history()[-1].reason
        deadline = time.monotonic() + 10
        while shop.client.phase.frozen or shop.client.phase.epoch != state.epoch:
            assert time.monotonic() < deadline, "the client did not hear of the abort"
            time.sleep(0.02)
        # MySQL takes writes again, through the reopened fence.
        users.update({"id": ids[0]}, {"name": "after the abort"})
        for uid in ids[3:]:
            users.insert(shop.user(uid, name="after the abort"))
    finally:
        writer.send_signal(signal.SIGCONT)
    assert shop.applied(shop.users, timeout_s=60)
    expected = {ids[0]: "after the abort", ids[1]: "before the switch", ids[2]: "before the switch",
                ids[3]: "after the abort", ids[4]: "after the abort", ids[5]: "after the abort"}
    for uid, name in expected.items():
        assert shop.mysql_row("users", uid)["name"] == name, uid
        got = users.get({"id": uid})  # phase 4 reads DynamoDB: the pipeline carried every write
        assert got is not None and got["name"] == name, uid

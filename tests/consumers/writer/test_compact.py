"""``replicator compact`` on DynamoDB Local: expired tombstone entries of embedded children go,
everything else stays — live children, tombstones still inside ``dynamodb.tombstone_ttl_s``,
tombstones written before entries carried ``_ttl``, and a tombstone whose child was written again
between the scan and the removal."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from consumers.writer.applier import ConditionalApplier
from consumers.writer.compact import compact_table
from consumers.writer.tables import TableSpec, ensure_tables
from replicator.mapping.conditional import entry_write, upsert
from replicator.mapping.embedded import compact_entries, expired_entries
from replicator.settings import Settings
from tests.consumers.writer.test_embedded import _model, _stored

pytestmark = pytest.mark.integration

NOW = 2_000_000_000.0  # the runs' "now": tombstones expiring before it are expired
EXPIRED, FRESH = int(NOW) - 60, int(NOW) + 3600


def _shop(dynamodb: Any, unique: str) -> tuple[Settings, str]:
    settings = Settings(dynamodb={"table_prefix": f"{unique}-"}, tables=[
        {"source": "s.orders", "target": "shop", "key": {"pk": "USER#{user_id}", "sk": "ORDER#{id:06d}"}},
        {"source": "s.order_items", "embed": {"parent": "s.orders", "as": "items",
                                               "on": {"order_id": "id", "user_id": "user_id"}}}])
    table = f"{unique}-shop"
    orders, _ = _model()
    ensure_tables(dynamodb, [TableSpec(table, "s.orders", orders.key_attributes)], create=True, stream=False)
    return settings, table


def _children(n: int, order: int = 1) -> list[dict[str, Any]]:
    return [{"id": i, "order_id": order, "user_id": 7, "qty": i} for i in range(1, n + 1)]


def _write(dynamodb: Any, table: str) -> None:
    """Order 1 with children 1-2 live, 3 and 4 deleted long ago (expired), 5 deleted lately,
    6 deleted before tombstone entries carried ``_ttl``; order 2 with child 7 live only."""
    orders, items = _model()
    kids = _children(6)
    writes = [upsert(orders, table, {"id": 1, "user_id": 7, "note": "a"}, 10, "cdc"),
              upsert(orders, table, {"id": 2, "user_id": 7, "note": "b"}, 10, "cdc")]
    writes += [entry_write(items, table, k, 20, deleted=False) for k in kids]
    writes += [entry_write(items, table, {"id": 7, "order_id": 2, "user_id": 7, "qty": 7}, 20, deleted=False)]
    writes += [entry_write(items, table, kids[2], 30, deleted=True, expires_at=EXPIRED),
               entry_write(items, table, kids[3], 31, deleted=True, expires_at=EXPIRED),
               entry_write(items, table, kids[4], 32, deleted=True, expires_at=FRESH)]
    applier = ConditionalApplier(dynamodb, mode="put", concurrency=1)
    applier.start()
    try:
        for w in writes:
            assert [r.outcome for r in applier.apply([w])] == ["applied"]
    finally:
        applier.close()
    key = orders.key({"id": 1, "user_id": 7})
    dynamodb.update_item(TableName=table, Key=key, UpdateExpression="SET #m.#e = :t",
                         ExpressionAttributeNames={"#m": "items", "#e": "6"},
                         ExpressionAttributeValues={":t": {"M": {"_version": {"N": "33"},
                                                                 "_deleted": {"BOOL": True}}}})


def _entries(dynamodb: Any, table: str, order: int = 1) -> dict[str, dict[str, Any]]:
    orders, _ = _model()
    item = _stored(dynamodb, table, orders, order)
    return {name: av["M"] for name, av in item["items"]["M"].items()}


def test_only_expired_tombstone_entries_are_removed(dynamodb: Any, unique: str) -> None:
    settings, table = _shop(dynamodb, unique)
    _write(dynamodb, table)
    before = _entries(dynamodb, table)
    dry = compact_table(dynamodb, settings, settings.tables[0], dry_run=True, now=NOW, segments=2)
    assert (dry.items_scanned, dry.items_compacted, dry.entries_expired, dry.entries_removed) == (2, 1, 2, 0)
    assert _entries(dynamodb, table) == before
    report = compact_table(dynamodb, settings, settings.tables[0], now=NOW, segments=2)
    assert (report.items_scanned, report.items_compacted, report.entries_expired, report.entries_removed,
            report.entries_rewritten) == (2, 1, 2, 2, 0)
    after = _entries(dynamodb, table)
    assert sorted(after) == ["1", "2", "5", "6"]
    assert {k: after[k] for k in ("1", "2", "5", "6")} == {k: before[k] for k in ("1", "2", "5", "6")}
    assert sorted(_entries(dynamodb, table, order=2)) == ["7"]
    again = compact_table(dynamodb, settings, settings.tables[0], now=NOW, segments=2)
    assert (again.entries_expired, again.entries_removed) == (0, 0)


def test_a_child_written_again_after_the_scan_keeps_its_entry(dynamodb: Any, unique: str) -> None:
    _, table = _shop(dynamodb, unique)
    _write(dynamodb, table)
    orders, items = _model()
    key = orders.key({"id": 1, "user_id": 7})
    scanned = expired_entries(_stored(dynamodb, table, orders, 1), "items", NOW)
    assert sorted(scanned) == ["3", "4"]
    # child 3 comes back (a re-insert, newer than its delete) before the removal is sent
    applier = ConditionalApplier(dynamodb, mode="put", concurrency=1)
    applier.start()
    try:
        applier.apply([entry_write(items, table, _children(3)[2], 40, deleted=False)])
    finally:
        applier.close()
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.update_item(**compact_entries(table, key, "items", scanned))
    assert _entries(dynamodb, table)["3"]["_version"] == {"N": "40"}
    del scanned["3"]
    dynamodb.update_item(**compact_entries(table, key, "items", scanned))
    assert "4" not in _entries(dynamodb, table) and "3" in _entries(dynamodb, table)


def test_the_cli_compacts_and_names_a_table_without_children(
        dynamodb: Any, unique: str, stack_env: dict[str, str], tmp_path: Path) -> None:
    _, table = _shop(dynamodb, unique)
    _write(dynamodb, table)  # its tombstones expire in 2033 (NOW): not yet
    _, items = _model()
    applier = ConditionalApplier(dynamodb, mode="put", concurrency=1)
    applier.start()
    try:  # child 1 deleted, its tombstone already expired in real time
        applier.apply([entry_write(items, table, _children(1)[0], 50, deleted=True,
                                   expires_at=int(time.time()) - 60)])
    finally:
        applier.close()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"dynamodb": {"table_prefix": f"{unique}-"}, "tables": [
        {"source": "s.orders", "target": "shop", "key": {"pk": "USER#{user_id}", "sk": "ORDER#{id:06d}"}},
        {"source": "s.order_items", "embed": {"parent": "s.orders", "as": "items",
                                               "on": {"order_id": "id", "user_id": "user_id"}}}]}))
    env = {**stack_env, "PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "local",
           "AWS_SECRET_ACCESS_KEY": "local"}
    res = subprocess.run([sys.executable, "-m", "replicator.cli", "compact", "--config", str(config),
                          "--json"], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    (doc,) = json.loads(res.stdout)["tables"]
    assert (doc["source"], doc["entries_expired"], doc["entries_removed"]) == ("s.orders", 1, 1), doc
    assert sorted(_entries(dynamodb, table)) == ["2", "3", "4", "5", "6"]
    res = subprocess.run([sys.executable, "-m", "replicator.cli", "compact", "--config", str(config),
                          "--table", "s.order_items"], env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert res.returncode == 2 and "s.order_items" in res.stderr and "s.orders" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


class _RewritesAfterScan:
    """A DynamoDB client whose scan answers, then child 3 is inserted again (newer than its delete)."""

    def __init__(self, client: Any, table: str) -> None:
        self._client, self._table, self.done = client, table, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def scan(self, **kwargs: Any) -> Any:
        page = self._client.scan(**kwargs)
        if not self.done and page.get("Items"):
            self.done = True
            _, items = _model()
            applier = ConditionalApplier(self._client, mode="put", concurrency=1)
            applier.start()
            try:
                applier.apply([entry_write(items, self._table, _children(3)[2], 40, deleted=False)])
            finally:
                applier.close()
        return page


def test_compact_removes_the_other_expired_entries_of_an_item_whose_child_came_back(dynamodb: Any,
                                                                                   unique: str) -> None:
    settings, table = _shop(dynamodb, unique)
    _write(dynamodb, table)
    report = compact_table(_RewritesAfterScan(dynamodb, table), settings, settings.tables[0], now=NOW,
                           segments=1)
    assert (report.entries_expired, report.entries_removed, report.entries_rewritten) == (2, 1, 1)
    after = _entries(dynamodb, table)
    assert "4" not in after and after["3"]["_version"] == {"N": "40"} and "_deleted" not in after["3"]


def test_a_stopped_run_says_it_is_incomplete_and_removes_nothing_more(dynamodb: Any, unique: str) -> None:
    import threading

    settings, table = _shop(dynamodb, unique)
    _write(dynamodb, table)
    stop = threading.Event()
    stop.set()  # SIGTERM before the scan: the CLI then exits 1 and says to run it again
    report = compact_table(dynamodb, settings, settings.tables[0], now=NOW, stop=stop)
    assert (report.complete, report.entries_removed) == (False, 0)
    assert sorted(_entries(dynamodb, table)) == ["1", "2", "3", "4", "5", "6"]

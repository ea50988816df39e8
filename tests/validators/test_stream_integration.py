"""The stream validator on the real stack: MySQL -> reader -> Kafka -> writer -> DynamoDB, and the
validator in its own consumer group comparing each changed key across both stores."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
import yaml

from replicator.control import names
from replicator.control.watermark import PipelineWatermark
from replicator.mapping import TableMapper
from replicator.reader.service import create_reader
from replicator.settings import Settings, load_settings
from tests.conftest import admin_connect
from tests.consumers.conftest import (  # noqa: F401 -- fixtures used by these tests
    COLUMNS,
    InProcessWriter,
    WriterEnv,
    in_process_writer,
    writer_env,
)
from tests.replicator.reader.support import FAST
from validators.service import build_validator, close_validator, start_validator
from validators.stream import Totals

pytestmark = pytest.mark.integration


class Shop:
    """Writes to the MySQL table, waits for the pipeline, plants differences in DynamoDB."""

    def __init__(self, env: WriterEnv, stack: dict[str, str], dynamodb: Any) -> None:
        self.env, self.dynamodb = env, dynamodb
        self.source = f"{env.db}.users"
        self.conn = admin_connect(stack, env.db)
        self.watermark = PipelineWatermark(env.control, env.settings)
        self.mapper = TableMapper(env.settings.tables[0], COLUMNS, ("id",))

    def sql(self, statement: str, args: Any = None) -> str:
        """Run one statement; the GTID of its transaction."""
        with self.conn.cursor() as cur:
            cur.execute(statement, args)
            cur.execute("SELECT @@last_gtid")
            return str(cur.fetchone()[0])

    def wait_applied(self, gtid: str, timeout_s: float = 60) -> None:
        applied = self.watermark.wait_applied([self.source], gtid=gtid, timeout_s=timeout_s)
        assert applied, f"{gtid} not applied within {timeout_s} s"

    def item(self, key: int) -> dict[str, Any]:
        return self.dynamodb.get_item(TableName=self.env.table, Key={"id": {"N": str(key)}},
                                      ConsistentRead=True)["Item"]

    def plant_value(self, key: int, name: str) -> None:
        self.dynamodb.update_item(TableName=self.env.table, Key={"id": {"N": str(key)}},
                                  UpdateExpression="SET #n = :v", ExpressionAttributeNames={"#n": "name"},
                                  ExpressionAttributeValues={":v": {"S": name}})

    def plant_missing(self, key: int) -> None:
        self.dynamodb.delete_item(TableName=self.env.table, Key={"id": {"N": str(key)}})

    def plant_resurrected(self, key: int) -> None:
        """A deleted row's tombstone replaced by a live item at the same version."""
        version = self.item(key)["_version"]
        item = self.mapper.to_item({"id": key, "name": "ghost", "balance": Decimal("1.00"), "n": 1},
                                   metadata={"_version": version})
        self.dynamodb.put_item(TableName=self.env.table, Item=item)

    def close(self) -> None:
        self.conn.close()


@pytest.fixture()
def shop(writer_env: WriterEnv, isolated_env: dict[str, str], dynamodb: Any) -> Iterator[Shop]:  # noqa: F811
    s = Shop(writer_env, isolated_env, dynamodb)
    yield s
    s.close()


def settings_for(shop: Shop, monkeypatch: pytest.MonkeyPatch, **validation: Any) -> Settings:
    monkeypatch.setenv("REPLICATOR_MYSQL__SERVER_ID", str(random.randint(100_000, 4_000_000)))
    return load_settings(tables=[{"source": shop.source}], log={"level": "warning"},
                         validation={"recheck_wait_s": 10.0, **validation})


@contextmanager
def pipeline(shop: Shop, settings: Settings, make_writer: Any, *,
             client: Any = None) -> Iterator[InProcessWriter]:
    reader = create_reader(settings, options=FAST)
    reader.start()
    writer = make_writer(client) if client is not None else make_writer()
    thread = threading.Thread(target=writer.writer.run, name="writer", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while shop.env.control.get_marker(names.READER_WATERMARK) is None:
            assert time.monotonic() < deadline, "the reader published no watermark"
            time.sleep(0.05)
        yield writer
    finally:
        writer.writer.stop_event.set()
        thread.join(30)
        reader.stop()


def validate_once(settings: Settings, control: Any, idle_s: float = 4.0) -> Totals:
    """One validator process's life: its group's partitions read to their end, then closed."""
    v = build_validator(settings, control, poll_s=0.05)
    start_validator(v)
    try:
        return v.run(lambda v: v.clock() - v.last_message_at >= idle_s)
    finally:
        close_validator(v)


def found(totals: Totals) -> list[tuple[str, str, dict[str, str]]]:
    return sorted((v.check.key, v.reason, v.mismatch.fields if v.mismatch else {}) for v in totals.failures)


def counts(control: Any) -> tuple[int, int]:
    now = time.time()
    return (control.window_sum(names.VALIDATION_PASSED, now - 600, now + 60),
            control.window_sum(names.VALIDATION_FAILED, now - 600, now + 60))


def test_planted_differences_of_each_class_are_found_and_counted_and_a_restart_resumes(
    shop: Shop, in_process_writer: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    settings = settings_for(shop, monkeypatch)
    with pipeline(shop, settings, in_process_writer):
        for i in range(1, 41):
            shop.sql("INSERT INTO users VALUES (%s, %s, %s, %s)", (i, f"user{i}", f"{i}.25", i))
        shop.sql("UPDATE users SET n = n + 100 WHERE id <= 10")
        shop.wait_applied(shop.sql("DELETE FROM users WHERE id = 40"))
        shop.plant_value(3, "WRONG")  # an attribute changed behind the pipeline's back
        shop.plant_missing(4)  # an item lost
        shop.plant_resurrected(40)  # a deleted row alive again

        first = validate_once(settings, shop.env.control)
        assert found(first) == [("id=3", "value", {"name": "other"}), ("id=4", "missing", {}),
                                ("id=40", "extra", {})]
        assert (first.failed, first.passed, first.unverified) == (3, 37, 0)
        assert first.events == 51
        assert counts(shop.env.control) == (37, 3), "the 3 -> 4 gate's counters"

        # A second life of the validator resumes after the first one's last batch: only the new
        # changes are compared, and of the planted ones only the new difference is reported.
        shop.wait_applied(shop.sql("UPDATE users SET n = n + 1 WHERE id BETWEEN 11 AND 15"))
        shop.plant_value(12, "AGAIN")
        second = validate_once(settings, shop.env.control)
        assert (second.events, second.keys) == (5, 5)
        assert found(second) == [("id=12", "value", {"name": "other"})]
        assert counts(shop.env.control) == (41, 4)


class SlowDynamoDB:
    """The writer's DynamoDB client with every write delayed: replication lags behind MySQL."""

    def __init__(self, client: Any, delay_s: float) -> None:
        self._client, self._delay_s = client, delay_s

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name in ("transact_write_items", "put_item", "batch_write_item"):
            def slowed(*args: Any, **kwargs: Any) -> Any:
                time.sleep(self._delay_s)
                return attr(*args, **kwargs)
            return slowed
        return attr


def test_a_steady_workload_with_the_writer_slowed_gives_no_false_failure(
    shop: Shop, in_process_writer: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    from consumers.writer.applier import make_client

    settings = settings_for(shop, monkeypatch)
    control = shop.env.control
    with pipeline(shop, settings, in_process_writer, client=SlowDynamoDB(make_client(settings), 0.3)) as w:
        w.writer.options = type(w.writer.options)(phase_refresh_s=0.1, max_batch=5)
        for i in range(1, 21):
            shop.sql("INSERT INTO users VALUES (%s, 'x', 0, 0)", (i,))
        v = build_validator(settings, control, poll_s=0.05)
        start_validator(v)
        stop = threading.Event()
        validating = threading.Thread(target=v.run, args=(lambda _: stop.is_set(),), daemon=True)
        validating.start()
        try:
            rng = random.Random(3)
            last = ""
            ends = time.monotonic() + 8
            while time.monotonic() < ends:  # hot keys: rows keep changing while they are compared
                last = shop.sql("UPDATE users SET n = n + 1, name = %s WHERE id = %s",
                                (f"n{rng.randrange(1000)}", rng.randrange(1, 21)))
                time.sleep(0.02)
            shop.wait_applied(last, timeout_s=120)
            deadline = time.monotonic() + 60
            while time.time() - v.last_message_at < 4:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        finally:
            stop.set()
            validating.join(60)
            close_validator(v)
    assert v.totals.failed == 0, found(v.totals)
    assert v.totals.passed > 0 and v.totals.keys == v.totals.passed + v.totals.unverified


def test_the_cli_reports_the_difference_as_json_and_exits_1(
    shop: Shop, in_process_writer: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any,  # noqa: F811
    isolated_env: dict[str, str],
) -> None:
    settings = settings_for(shop, monkeypatch)
    with pipeline(shop, settings, in_process_writer):
        shop.sql("INSERT INTO users VALUES (1, 'a', 1, 1), (2, 'b', 2, 2)")
        shop.wait_applied(shop.sql("UPDATE users SET n = 5 WHERE id = 2"))
        shop.plant_value(2, "WRONG")
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump({"tables": [{"source": shop.source}]}))
        res = subprocess.run([sys.executable, "-m", "replicator.cli", "validate", "--config", str(config),
                              "--once", "--idle-s", "4", "--json"], env=isolated_env, capture_output=True,
                             text=True, timeout=180, check=False)
    assert res.returncode == 1, res.stderr[-3000:]
    report = json.loads(res.stdout)
    assert (report["failed"], report["passed"]) == (1, 1)
    assert report["failures"][0]["key"] == "id=2" and report["failures"][0]["fields"] == {"name": "other"}
    assert "Data validation failed" in res.stderr


def test_two_replicas_share_the_partitions_as_one_consumer_group(
    shop: Shop, in_process_writer: Any, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    settings = settings_for(shop, monkeypatch)
    with pipeline(shop, settings, in_process_writer):
        replicas = [build_validator(settings, shop.env.control, poll_s=0.05) for _ in range(2)]
        stop = threading.Event()
        threads = []
        for v in replicas:
            start_validator(v)
            threads.append(threading.Thread(target=v.run, args=(lambda _: stop.is_set(),), daemon=True))
            threads[-1].start()
        try:
            deadline = time.monotonic() + 60
            while not all(v.consumer._consumer.assignment() for v in replicas):  # type: ignore[attr-defined]
                assert time.monotonic() < deadline, "the group never gave both replicas partitions"
                time.sleep(0.1)
            for i in range(1, 31):
                last = shop.sql("INSERT INTO users VALUES (%s, 'x', 0, 0)", (i,))
            shop.wait_applied(last)
            while min(time.time() - v.last_message_at for v in replicas) < 3:
                assert time.monotonic() < deadline + 60
                time.sleep(0.2)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
            for v in replicas:
                close_validator(v)
    keys = [v.totals.keys for v in replicas]
    assert all(k > 0 for k in keys) and sum(keys) == 30, keys
    assert sum(v.totals.passed for v in replicas) == 30

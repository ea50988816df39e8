"""The reader reports its lag to the control store (reader.heartbeat) for the 4 -> 5 gate."""

from __future__ import annotations

import time
from typing import Any

import pytest

from replicator.control import names, open_control_store
from replicator.control.memory import MemoryControlStore
from replicator.errors import ControlStoreUnavailable
from replicator.reader.checkpoint import Checkpoint
from replicator.reader.heartbeat import HeartbeatPublisher
from replicator.settings import Settings, load_settings
from tests.replicator.reader.support import head, reader_settings, running_reader, wait_caught_up


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_heartbeats_are_throttled_and_carry_lag_and_position() -> None:
    store, clock = MemoryControlStore(), Clock()
    hb = HeartbeatPublisher(load_settings(), interval_s=2.0, store_factory=lambda _s: store, clock=clock)
    hb(1.5, Checkpoint("mysql-bin.000001", 100))
    clock.now = 1.0
    hb(0.0, Checkpoint("mysql-bin.000001", 200))  # within the interval: not written
    first = store.get_marker(names.READER_HEARTBEAT)
    assert first is not None and (first["lag_s"], first["position"]) == (1.5, "mysql-bin.000001:100")
    clock.now = 2.5
    hb(0.0, Checkpoint("mysql-bin.000001", 300))
    second = store.get_marker(names.READER_HEARTBEAT)
    assert second is not None and (second["lag_s"], second["position"]) == (0.0, "mysql-bin.000001:300")


def test_an_unreachable_store_is_counted_not_fatal() -> None:
    def down(_s: Settings) -> Any:
        raise ControlStoreUnavailable("redis down")

    failures: list[None] = []
    hb = HeartbeatPublisher(load_settings(), store_factory=down, on_failure=lambda: failures.append(None))
    hb(0.0, None)  # must not raise
    assert len(failures) == 1


@pytest.mark.integration
def test_an_idle_caught_up_reader_reports_zero_lag(
        mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str], kafka_cleanup: None, redis_client: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO t VALUES (1)")
    settings = reader_settings(mysql_db, ["t"], monkeypatch)
    with running_reader(settings) as reader, open_control_store(settings) as store:
        wait_caught_up(reader, head(mysql_admin))
        deadline = time.monotonic() + 30
        marker = None
        while time.monotonic() < deadline:
            marker = store.get_marker(names.READER_HEARTBEAT)
            if marker is not None and marker["lag_s"] == 0:
                break
            time.sleep(0.3)
    assert marker is not None and marker["lag_s"] == 0 and time.time() - marker["ts"] < 30

"""`replicator phase` as an operator runs it: output, exit codes, audit, nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest

from replicator.control import PhaseState, names, open_control_store
from replicator.phase import PhaseController
from replicator.phase.gates import GateResult
from replicator.settings import Settings

pytestmark = pytest.mark.integration


class NoGates:
    def check(self, target: int, state: PhaseState | None = None) -> list[GateResult]:
        return []


def phase(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "replicator.cli", "phase", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.fixture()
def env(isolated_env: dict[str, str], redis_client: Any) -> dict[str, str]:
    return {**isolated_env, "PATH": "/usr/bin:/bin", "REPLICATOR_LOG__FORMAT": "json"}


def test_status_json_has_phase_flags_epoch_who_gates_and_backfill(
    env: dict[str, str], settings: Settings,
) -> None:
    progress = {"done": 5, "total_estimate": 10, "complete": False}
    with open_control_store(settings) as store:
        store.put_marker(names.backfill_marker("shop.users"), progress)
    r = phase(env, "status", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["phase"], doc["epoch"], doc["updated_by"]) == (1, 0, "")
    assert doc["flags"] == {"migration_phase": 1, "dual_write_enabled": False, "dual_read_enabled": False,
                            "read_from_dynamodb": False, "validation_enabled": False}
    assert doc["gates"]["next_phase"] == 2 and doc["gates"]["ready"] is False
    assert doc["backfill"]["backfill.shop.users"]["done"] == 5


def test_set_with_a_failed_gate_exits_1_and_changes_nothing(env: dict[str, str], settings: Settings) -> None:
    r = phase(env, "set", "2", "--reason", "go")
    assert r.returncode == 1
    assert "writer_connected" in r.stderr and "nothing was changed" in r.stderr
    with open_control_store(settings) as store:
        assert store.get_phase().epoch == 0 and store.history() == []


def test_forced_set_logs_migration_phase_and_records_the_forced_gates(env: dict[str, str]) -> None:
    r = phase(env, "set", "2", "--reason", "soak skipped for the demo", "--actor", "alice", "--force")
    assert r.returncode == 0, r.stderr
    logged = [json.loads(line) for line in r.stderr.splitlines() if "Migration phase" in line]
    assert [(e["from_phase"], e["to_phase"], e["actor"], e["reason"]) for e in logged] == [
        (1, 2, "alice", "soak skipped for the demo")]
    hist = json.loads(phase(env, "history", "--json").stdout)
    assert [(h["actor"], h["from_phase"], h["to_phase"]) for h in hist] == [("alice", 1, 2)]
    assert set(hist[0]["forced_gates"]) == {"dynamodb_tables_exist", "writer_connected"}


@pytest.mark.parametrize(("args", "message"), [
    (["set", "3", "--reason", "r"], "skips a step"),
    (["set", "6", "--reason", "r"], "from 1 to 5"),
    (["rollback", "0", "--reason", "r"], "from 1 to 5"),
    (["set", "2", "--reason", " "], "reason is required"),
    (["set", "2"], "--reason"),
    (["check", "9"], "from 1 to 5"),
])
def test_bad_input_exits_2_with_a_clear_message(env: dict[str, str], args: list[str], message: str) -> None:
    r = phase(env, *args)
    assert r.returncode == 2 and message in r.stderr


def test_an_unreachable_store_exits_2(env: dict[str, str]) -> None:
    r = phase({**env, "REPLICATOR_CONTROL__REDIS_URL": "redis://127.0.0.1:1/0"}, "status")
    assert r.returncode == 2 and "unreachable" in r.stderr


def test_rollback_from_phase_5_needs_the_explicit_discard_flag(
    env: dict[str, str], settings: Settings,
) -> None:
    for n in (2, 3, 4, 5):
        assert phase(env, "set", str(n), "--reason", "walk", "--force").returncode == 0
    refused = phase(env, "rollback", "4", "--reason", "regret")
    assert refused.returncode == 2 and "writes made in phase 5 are NOT in MySQL" in refused.stderr
    done = phase(env, "rollback", "1", "--reason", "regret", "--discard-phase5-writes-not-in-mysql")
    assert done.returncode == 0, done.stderr
    with open_control_store(settings) as store:
        assert store.get_phase().phase == 1
        assert store.history()[-1].acknowledgements == ("discard-phase5-writes-not-in-mysql",)


def test_check_passes_gate_1_2_when_tables_exist_and_the_writer_is_connected(
    env: dict[str, str], settings: Settings, dynamodb: Any,
) -> None:
    prefix = settings.dynamodb.table_prefix
    dynamodb.create_table(
        TableName=f"{prefix}users", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    env = {**env, "REPLICATOR_TABLES": '[{"source": "shop.users"}]'}
    assert phase(env, "check", "2").returncode == 1  # no writer yet
    with open_control_store(settings) as store:
        store.put_marker(names.WRITER_HEARTBEAT, {"ts": time.time(), "group": settings.writer_group})
    r = phase(env, "check", "2", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    gates = {g["gate"] for g in json.loads(r.stdout)["results"]}
    assert gates == {"dynamodb_tables_exist", "writer_connected"}


def test_the_dynamodb_backend_serves_the_same_commands(env: dict[str, str], dynamodb: Any) -> None:
    env = {**env, "REPLICATOR_CONTROL__BACKEND": "dynamodb"}
    assert phase(env, "set", "2", "--reason", "r", "--force").returncode == 0
    assert json.loads(phase(env, "status", "--json").stdout)["flags"]["dual_write_enabled"] is True


def test_status_in_phase_5_shows_the_mysql_retirement_soak(env: dict[str, str], settings: Settings) -> None:
    with open_control_store(settings) as store:
        ctl = PhaseController(store, NoGates())
        for n in (2, 3, 4, 5):
            ctl.set_migration_phase(n, reason="walk", actor="t")
    doc = json.loads(phase(env, "status", "--json").stdout)
    assert doc["flags"]["read_from_dynamodb"] is True and doc["flags"]["dual_write_enabled"] is False
    assert doc["gates"]["next_phase"] is None
    assert [r["gate"] for r in doc["gates"]["results"]] == ["soak_time"]
    assert doc["gates"]["results"][0]["window_s"] == settings.gates.window_5_final_s


def test_a_switch_left_frozen_by_a_killed_controller_is_repaired_and_writes_go_back_to_mysql(
    env: dict[str, str], settings: Settings, isolated_env: dict[str, str],
) -> None:
    import signal

    from replicator.phase.switch import LEASE_PREFIX
    from tests.conftest import admin_connect

    for n in (2, 3, 4):
        assert phase(env, "set", str(n), "--reason", "walk", "--force").returncode == 0
    with open_control_store(settings) as store:  # a client that never acknowledges the freeze
        store.put_marker(LEASE_PREFIX + "stuck-app", {"expires_at": time.time() + 600, "acked_epoch": 0})
    controller = subprocess.Popen(
        [sys.executable, "-m", "replicator.cli", "phase", "set", "5", "--reason", "go", "--force"],
        env={**env, "REPLICATOR_CUTOVER__MAX_WRITE_PAUSE_S": "60"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        with open_control_store(settings) as store:
            while not store.get_phase().frozen:
                assert time.monotonic() < deadline and controller.poll() is None, "the switch never froze"
                time.sleep(0.05)
        controller.send_signal(signal.SIGKILL)  # mid-switch: waiting for the client's acknowledgement
        controller.wait(timeout=30)
    finally:
        if controller.poll() is None:
            controller.kill()
            controller.wait(timeout=30)
    refused = phase(env, "rollback", "3", "--reason", "get out")
    assert refused.returncode == 2 and "phase repair" in refused.stderr, refused.stderr
    too_soon = phase(env, "repair", "--reason", "controller killed")
    assert too_soon.returncode == 2 and "--force" in too_soon.stderr, too_soon.stderr
    with open_control_store(settings) as store:
        assert store.get_phase().frozen
    done = phase(env, "repair", "--reason", "controller killed", "--force")
    assert done.returncode == 0 and "repaired: phase 4" in done.stdout, done.stderr
    doc = json.loads(phase(env, "status", "--json").stdout)
    assert (doc["phase"], doc["freeze"], doc["generation"] % 2) == (4, None, 0)
    fence_db, fence_table = settings.cutover.fence_table.split(".")
    with admin_connect(isolated_env, fence_db) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT writes_to, generation FROM `{fence_table}`")
        assert cur.fetchall() == ((("mysql", doc["generation"]),))
    assert phase(env, "repair", "--reason", "again").stdout.startswith("nothing is frozen")
    assert phase(env, "rollback", "3", "--reason", "now it may").returncode == 0

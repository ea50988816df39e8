"""``replicator status --json`` on the real stack: its figures are what the stores hold."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
import yaml

from replicator.control import names
from tests.consumers.conftest import (  # noqa: F401 -- fixtures used by these tests
    WriterEnv,
    in_process_writer,
    make_event,
    writer_env,
)

pytestmark = pytest.mark.integration


def test_status_json_figures_match_the_control_store_and_kafka(
    writer_env: WriterEnv, in_process_writer: Any, isolated_env: dict[str, str], tmp_path: Any,  # noqa: F811
) -> None:
    env = writer_env
    env.produce([make_event("c", env.db, k, 1000 + k) for k in range(10)], raw=[(b"k", b"not an event")])
    w = in_process_writer()
    w.run_until_consumed(11)
    now = time.time()
    env.control.put_marker(names.backfill_marker(f"{env.db}.users"),
                           {"done": 7, "total_estimate": 10, "complete": False})
    env.control.put_marker("client.lease.shop.h.1.abc", {
        "name": "shop", "host": "h", "pid": 1, "expires_at": now + 60, "acked_epoch": 0, "phase": 2})
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"tables": [{"source": f"{env.db}.users"}]}))
    command = [sys.executable, "-m", "replicator.cli", "status", "--config", str(config)]
    res = subprocess.run([*command, "--json"], env=isolated_env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout)
    stored = env.control.get_phase()
    assert (doc["phase"]["phase"], doc["phase"]["epoch"]) == (stored.phase, stored.epoch) == (2, 1)
    assert doc["gates"]["next_phase"] == 3
    assert doc["writer"]["alive"] is True
    table = doc["kafka"]["tables"][f"{env.db}.users"]
    assert (table["messages"], table["writer_lag"], table["validator_lag"]) == (11, 0, 11)
    assert doc["kafka"]["dead_letters"] == 1
    since = time.time() - 600
    applied = env.control.window_sum(names.DUAL_WRITE_APPLIED, since, time.time())
    assert doc["rates"]["counts"][names.DUAL_WRITE_APPLIED] == applied == 10
    assert doc["rates"]["counts"][names.DUAL_WRITE_FAILED] == 1
    assert doc["backfill"][f"{env.db}.users"]["done"] == 7
    assert [c["name"] for c in doc["clients"] if c["live"]] == ["shop"]

    once = subprocess.run([*command, "--once"], env={**isolated_env, "COLUMNS": "160"}, capture_output=True,
                          text=True, timeout=120, check=False)
    assert once.returncode == 0, once.stderr[-3000:]
    assert "Phase 2 · Safety" in once.stdout and "dead letters 1" in once.stdout

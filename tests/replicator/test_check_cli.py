"""``replicator check --json`` on the real stack: one document, every service probed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_check_json_lists_every_service_and_says_ok(isolated_env: dict[str, str]) -> None:
    res = subprocess.run([sys.executable, "-m", "replicator.cli", "check", "--json"], env=isolated_env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads(res.stdout)
    assert doc["ok"] is True
    assert {p["service"] for p in doc["probes"]} >= {"mysql", "kafka", "dynamodb", "redis"}
    assert all(p["ok"] and p["seconds"] >= 0 for p in doc["probes"])

"""`replicator demo` runs the whole story on the real stack and cleans up after itself."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import admin_connect

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_walks_the_phases_with_zero_differences_and_cleans_up(
        isolated_env: dict[str, str], tmp_path: Path, dynamodb: Any) -> None:
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
    # Nothing is left behind: no demo database, no DynamoDB table under the namespace.
    conn = admin_connect(isolated_env)
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES LIKE 'demo%'")
        leftover = [r[0] for r in cur.fetchall()]
    conn.close()
    prefix = isolated_env["REPLICATOR_DYNAMODB__TABLE_PREFIX"]
    tables = [t for t in dynamodb.list_tables()["TableNames"] if t.startswith(prefix)]
    assert tables == []
    assert not [d for d in leftover if d in out]

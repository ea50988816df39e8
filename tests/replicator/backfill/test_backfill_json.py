"""``replicator backfill --json``: the result per table as one document on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration


def test_backfill_json_reports_each_table(mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str],
                                          kafka_cleanup: None, redis_client: Any, tmp_path: Any) -> None:
    with mysql_admin.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(9))")
        cur.executemany("INSERT INTO t VALUES (%s, 'x')", [(i,) for i in range(25)])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"tables": [{"source": f"{mysql_db}.t"}]}))
    res = subprocess.run([sys.executable, "-m", "replicator.cli", "backfill", "--config", str(cfg),
                          "--no-wait", "--no-progress", "--chunk-rows", "10", "--json"], env=isolated_env,
                         capture_output=True, text=True, timeout=180, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout)
    (table,) = doc["tables"]
    assert (table["table"], table["rows"], table["chunks"], table["dead_lettered"], table["error"]) == (
        f"{mysql_db}.t", 25, 3, 0, None)

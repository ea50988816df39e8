"""`replicator write` refuses a bad start with exit 2 and a message naming what to fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.integration


def _write(tmp_path: Path, tables: list[dict[str, Any]], *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "writer.yaml"
    config.write_text(yaml.safe_dump({"tables": tables}))
    cmd = [str(Path(sys.executable).parent / "replicator"), "write", "--config", str(config), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ))


def test_a_missing_dynamodb_table_without_create_tables_exits_2_naming_it(writer_env: Any,
                                                                          tmp_path: Path) -> None:
    done = _write(tmp_path, [{"source": f"{writer_env.db}.users"}])
    assert done.returncode == 2
    assert writer_env.table in done.stderr and "--create-tables" in done.stderr


def test_a_key_template_naming_an_unknown_column_exits_2_at_start_up(writer_env: Any, tmp_path: Path) -> None:
    done = _write(tmp_path, [{"source": f"{writer_env.db}.users", "key": {"pk": "USER#{uid}"}}],
                  "--create-tables")
    assert done.returncode == 2
    assert "key.pk" in done.stderr and "'uid'" in done.stderr


def test_an_existing_table_with_another_key_schema_exits_2(writer_env: Any, dynamodb: Any,
                                                           tmp_path: Path) -> None:
    dynamodb.create_table(TableName=writer_env.table, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
    done = _write(tmp_path, [{"source": f"{writer_env.db}.users"}])
    assert done.returncode == 2
    assert "has key" in done.stderr and "'N'" in done.stderr


def test_a_key_template_that_covers_no_unique_index_exits_2_naming_the_columns(writer_env: Any,
                                                                               tmp_path: Path) -> None:
    # Two users of one name would share one item and overwrite each other: refused at start-up.
    done = _write(tmp_path, [{"source": f"{writer_env.db}.users", "key": {"pk": "NAME#{name}"}}],
                  "--create-tables")
    assert done.returncode == 2, done.stderr
    assert "cover no unique index" in done.stderr and "['name']" in done.stderr

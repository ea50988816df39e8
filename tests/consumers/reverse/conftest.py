"""The reverse replication on the real stack: a MySQL table, its DynamoDB table (with its stream,
made by the writer's ``--create-tables`` code) and phase-5 application writes.

Application writes are made the way the phase-5 client makes them, through the shared mapping
(``TableMapper.to_item`` with ``_origin = app`` and a version ``generation << 52 | µs``; a
delete is a tombstone, a key change a tombstone of the old key and a put of the new one),
directly with boto3, so the tests need neither the pipeline nor a phase-5 client.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from consumers.reverse.runner import ReverseOptions, ReverseReplicator
from consumers.reverse.service import reverse_session
from consumers.writer.schema import load_schemas
from consumers.writer.service import check_mappings
from consumers.writer.tables import ensure_tables
from replicator.adapters.dynamodb import dynamodb_client
from replicator.events import Row
from replicator.mapping import ORIGIN_APP, TableMapper, is_tombstone
from replicator.mapping.cells import converter, select_expr
from replicator.mapping.conditional import metadata
from replicator.mapping.names import DELETED_ATTR, TTL_ATTR
from replicator.mapping.pytypes import from_python
from replicator.settings import Settings, load_settings
from tests.conftest import admin_connect

GENERATION = 1  # the first phase 5


@dataclass
class ReverseEnv:
    settings: Settings
    db: str
    table: str  # the DynamoDB table
    mapper: TableMapper
    dynamodb: Any
    admin: Any  # autocommit admin connection, session in UTC, the test's database selected
    config: Path  # a config file for `replicator reverse` subprocesses (passwords in the environment)

    # ----------------------------------------------------------------- phase-5 writes

    def item_row(self, values: dict[str, Any]) -> Row:
        """An application's row (PyMySQL's types) in the mapping's value model."""
        return {c: from_python(self.mapper.types[c], v) for c, v in values.items()}

    def version(self) -> int:
        return GENERATION << 52 | time.time_ns() // 1000

    def put(self, values: dict[str, Any], origin: str = ORIGIN_APP, **raw: Any) -> None:
        item = self.mapper.to_item(self.item_row(values), metadata=metadata(self.version(), origin))
        item.update(raw)  # attributes the mapping would refuse, written behind its back
        self.dynamodb.put_item(TableName=self.table, Item=item)

    def delete(self, key: dict[str, Any]) -> None:
        item: dict[str, Any] = dict(self.mapper.key(self.item_row(key)))
        item.update(metadata(self.version(), ORIGIN_APP))
        item[DELETED_ATTR] = {"BOOL": True}
        item[TTL_ATTR] = {"N": str(int(time.time()) + 3600)}
        self.dynamodb.put_item(TableName=self.table, Item=item)

    def move(self, values: dict[str, Any], new_key: dict[str, Any]) -> None:
        """A primary-key update in phase 5: a tombstone of the old key, a put of the new one."""
        old_key = {c: values[c] for c in self.mapper.primary_key}
        self.delete(old_key)
        self.put({**values, **new_key})

    # ----------------------------------------------------------------- reading both sides

    def mysql_row(self, key: int) -> dict[str, Any] | None:
        with self.admin.cursor() as cur:
            cur.execute(f"SELECT * FROM `{self.mapper.table.split('.')[1]}` WHERE id = %s", (key,))
            names = [d[0] for d in cur.description]
            row = cur.fetchone()
        return None if row is None else dict(zip(names, row, strict=True))

    def mysql_rows(self) -> dict[str, Row]:
        """Every row, mapped columns, in the event value model (the backfill's lossless SELECT)."""
        columns = list(self.mapper.attributes)
        exprs = ", ".join(select_expr(c, self.mapper.types[c]) for c in columns)
        convert = [converter(self.mapper.types[c]) for c in columns]
        with self.admin.cursor() as cur:
            cur.execute(f"SELECT {exprs} FROM `{self.mapper.table.split('.')[1]}`")
            cells = cur.fetchall()
        rows = [{c: f(v) for c, f, v in zip(columns, convert, r, strict=True)} for r in cells]
        return {self.mapper.key_text(r): r for r in rows}

    def dynamodb_rows(self) -> dict[str, Row]:
        """Every live item mapped back to its row."""
        out: dict[str, Row] = {}
        for page in self.dynamodb.get_paginator("scan").paginate(TableName=self.table, ConsistentRead=True):
            for item in page["Items"]:
                if not is_tombstone(item):
                    row = self.mapper.to_row(item)
                    out[self.mapper.key_text(row)] = row
        return out

    # ----------------------------------------------------------------- the reverse replication

    def reverse(self, **options: Any) -> Any:
        opts = {"poll_interval_s": 0.05, "settle_s": 0.05, "shard_refresh_s": 1.0, **options}
        return reverse_session(self.settings, options=ReverseOptions(**opts))


def drain(rev: ReverseReplicator, after: float | None = None, timeout_s: float = 30.0) -> None:
    """Step until a round found every shard at its end after ``after`` (default: now)."""
    after = time.time() if after is None else after
    deadline = time.monotonic() + timeout_s
    while not (rev.progress.caught_up and rev.progress.caught_up_at > after):
        assert time.monotonic() < deadline, "the reverse replication did not catch up"
        if not rev.step():
            time.sleep(0.02)


def make_env(isolated_env: dict[str, str], db: str, unique: str, ddl: str, table: str, tmp_path: Path,
             monkeypatch: pytest.MonkeyPatch, **mapping: Any) -> ReverseEnv:
    admin_user = isolated_env.get("STACK_MYSQL_ADMIN_USER", "admin")
    admin_password = isolated_env.get("STACK_MYSQL_ADMIN_PASSWORD", "")
    admin = admin_connect(isolated_env, db)
    with admin.cursor() as cur:
        for statement in ddl.split(";"):
            if statement.strip():
                cur.execute(statement)
        cur.execute("SET SESSION time_zone = '+00:00'")
    monkeypatch.setenv("REPLICATOR_CLIENT__MYSQL_PASSWORD", admin_password)
    tables = [{"source": f"{db}.{table}", **mapping}]
    settings = load_settings(tables=tables, client={"mysql_user": admin_user}, log={"level": "warning"})
    config = tmp_path / "reverse.yaml"
    config.write_text(yaml.safe_dump({"tables": tables, "client": {"mysql_user": admin_user},
                                      "log": {"level": "info"}}))
    client = dynamodb_client(settings.dynamodb)
    schemas = load_schemas(settings)
    ensure_tables(client, check_mappings(settings, schemas), create=True)
    columns, pk = schemas[f"{db}.{table}"]
    mapper = TableMapper(settings.tables[0], columns, pk)
    return ReverseEnv(settings, db, f"{unique}-{table}", mapper, client, admin, config)


@pytest.fixture()
def reverse_env(isolated_env: dict[str, str], mysql_db: str, unique: str, dynamodb: Any,
                redis_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A factory: ``reverse_env(ddl, table, **mapping)`` -> :class:`ReverseEnv`."""
    made: list[ReverseEnv] = []

    def make(ddl: str, table: str, **mapping: Any) -> ReverseEnv:
        env = make_env(isolated_env, mysql_db, unique, ddl, table, tmp_path, monkeypatch, **mapping)
        made.append(env)
        return env

    yield make
    for env in made:
        env.admin.close()

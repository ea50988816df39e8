"""The writer's table check creates, adds and insists on the GSIs of the declared access patterns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from consumers.writer.schema import load_schemas
from consumers.writer.service import check_mappings
from consumers.writer.tables import SourceScope, TableSpec, ensure_tables, merge_specs
from replicator.adapters.dynamodb import dynamodb_client
from replicator.errors import ConfigError, TargetUnavailable
from replicator.mapping import GlobalIndex, IndexKey, KeyAttribute
from replicator.settings import Settings, load_settings

DDL = ("CREATE TABLE users (id INT PRIMARY KEY, email VARCHAR(255), country CHAR(2), "
       "created DATETIME(6), note TEXT)")
BY_EMAIL = {"name": "by_email", "pk": "email"}
BY_CREATED = {"name": "by_created", "pk": "country", "sk": "created"}

KEY = (KeyAttribute("pk", "HASH", "S", template="X#{id}"),)


def gsi(name: str, *attrs: tuple[str, str]) -> GlobalIndex:
    roles = ("HASH", "RANGE")
    return GlobalIndex(name, tuple(IndexKey(a, a, roles[i], t) for i, (a, t) in enumerate(attrs)))  # type: ignore[arg-type]


def spec(source: str, prefix: str, *indexes: GlobalIndex) -> TableSpec:
    return TableSpec("shared", source, KEY, indexes, (SourceScope(source, prefix, bool(indexes)),))


# --------------------------------------------------------------------------- merging (pure)


def test_a_shared_table_gets_the_union_of_its_sources_gsis() -> None:
    merged = merge_specs(spec("s.users", "USER#", gsi("by_email", ("email", "S"))),
                         spec("s.admins", "ADMIN#", gsi("by_email", ("email", "S")), gsi("by_n", ("n", "N"))))
    assert [g.name for g in merged.indexes] == ["by_email", "by_n"]
    assert merged.attribute_definitions() == [{"AttributeName": "pk", "AttributeType": "S"},
                                              {"AttributeName": "email", "AttributeType": "S"},
                                              {"AttributeName": "n", "AttributeType": "N"}]


def test_one_gsi_name_declared_with_two_keys_on_a_shared_table_is_refused() -> None:
    with pytest.raises(ConfigError, match="access pattern 'by_email' with different keys"):
        merge_specs(spec("s.users", "USER#", gsi("by_email", ("email", "S"))),
                    spec("s.admins", "ADMIN#", gsi("by_email", ("email", "S"), ("n", "N"))))


def test_one_attribute_keyed_with_two_types_on_a_shared_table_is_refused() -> None:
    with pytest.raises(ConfigError, match="attribute 'n' keys GSI 'by_n' as N but GSI 'by_n2' as S"):
        merge_specs(spec("s.users", "USER#", gsi("by_n", ("n", "N"))),
                    spec("s.admins", "ADMIN#", gsi("by_n2", ("n", "S"))))


def test_a_gsi_still_creating_when_the_bound_runs_out_is_a_transient_error() -> None:
    class Creating:
        def describe_table(self, TableName: str) -> dict[str, Any]:
            return {"Table": {"TableStatus": "ACTIVE",
                              "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                              "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                                       {"AttributeName": "email", "AttributeType": "S"}],
                              "GlobalSecondaryIndexes": [{
                                  "IndexName": "by_email", "IndexStatus": "CREATING",
                                  "KeySchema": [{"AttributeName": "email", "KeyType": "HASH"}],
                                  "Projection": {"ProjectionType": "ALL"}}]}}

    now = [0.0]
    with pytest.raises(TargetUnavailable, match=r"'by_email'.*still CREATING after 30 s"):
        ensure_tables(Creating(), [spec("s.users", "USER#", gsi("by_email", ("email", "S")))],
                      create=True, index_timeout_s=30, sleep=lambda s: now.__setitem__(0, now[0] + s),
                      clock=lambda: now[0])
    assert now[0] == 30


# --------------------------------------------------------------------------- on the stack


@pytest.fixture()
def users(settings: Settings, mysql_admin: Any, mysql_db: str, dynamodb: Any) -> tuple[Settings, Any]:
    """Settings mapping ``<db>.users`` with two access patterns, and a DynamoDB client."""
    with mysql_admin.cursor() as cur:
        cur.execute(DDL)
    mapped = load_settings(tables=[{"source": f"{mysql_db}.users", "indexes": [BY_EMAIL, BY_CREATED]}])
    return mapped, dynamodb_client(mapped.dynamodb)


def _gsis(dynamodb: Any, table: str) -> dict[str, Any]:
    desc = dynamodb.describe_table(TableName=table)["Table"]
    return {g["IndexName"]: g for g in desc.get("GlobalSecondaryIndexes", ())}


@pytest.mark.integration
def test_create_tables_creates_the_table_with_its_gsis_projecting_all(
        users: tuple[Settings, Any], dynamodb: Any, unique: str) -> None:
    settings, client = users
    assert ensure_tables(client, check_mappings(settings, load_schemas(settings)), create=True) == [
        f"{unique}-users"]
    gsis = _gsis(dynamodb, f"{unique}-users")
    assert sorted(gsis) == ["by_created", "by_email"]
    assert gsis["by_created"]["KeySchema"] == [{"AttributeName": "country", "KeyType": "HASH"},
                                               {"AttributeName": "created", "KeyType": "RANGE"}]
    assert all(g["Projection"] == {"ProjectionType": "ALL"} and g["IndexStatus"] == "ACTIVE"
               for g in gsis.values())


def _create_bare(dynamodb: Any, table: str) -> None:
    dynamodb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}])


@pytest.mark.integration
def test_an_existing_table_lacking_a_declared_gsi_is_refused_without_create_tables(
        users: tuple[Settings, Any], dynamodb: Any, unique: str) -> None:
    settings, client = users
    _create_bare(dynamodb, f"{unique}-users")
    with pytest.raises(ConfigError, match=rf"table '{unique}-users' has no GSI 'by_email'.*--create-tables"):
        ensure_tables(client, check_mappings(settings, load_schemas(settings)), create=False)


@pytest.mark.integration
def test_create_tables_adds_missing_gsis_to_an_existing_table_and_waits_until_active(
        users: tuple[Settings, Any], dynamodb: Any, unique: str) -> None:
    settings, client = users
    _create_bare(dynamodb, f"{unique}-users")
    assert ensure_tables(client, check_mappings(settings, load_schemas(settings)), create=True) == []
    gsis = _gsis(dynamodb, f"{unique}-users")
    assert sorted(gsis) == ["by_created", "by_email"]
    assert {g["IndexStatus"] for g in gsis.values()} == {"ACTIVE"}
    # and a second start finds everything in place
    ensure_tables(client, check_mappings(settings, load_schemas(settings)), create=False)


@pytest.mark.integration
def test_an_existing_gsi_of_that_name_with_another_key_is_refused(
        users: tuple[Settings, Any], dynamodb: Any, unique: str) -> None:
    settings, client = users
    dynamodb.create_table(
        TableName=f"{unique}-users", BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"},
                              {"AttributeName": "note", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_email",
                                 "KeySchema": [{"AttributeName": "note", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "KEYS_ONLY"}}])
    with pytest.raises(ConfigError, match=r"GSI 'by_email' keyed .*'note'.*delete that GSI"):
        ensure_tables(client, check_mappings(settings, load_schemas(settings)), create=True)


@pytest.mark.integration
def test_replicator_write_against_a_table_lacking_a_gsi_exits_2_naming_table_and_index(
        users: tuple[Settings, Any], dynamodb: Any, unique: str, mysql_db: str, tmp_path: Path) -> None:
    _create_bare(dynamodb, f"{unique}-users")
    config = tmp_path / "writer.yaml"
    config.write_text(yaml.safe_dump({"tables": [{"source": f"{mysql_db}.users", "indexes": [BY_EMAIL]}]}))
    cmd = [str(Path(sys.executable).parent / "replicator"), "write", "--config", str(config)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert done.returncode == 2
    assert f"'{unique}-users'" in done.stderr and "'by_email'" in done.stderr
    assert "--create-tables" in done.stderr

"""The DynamoDB tables the writer needs: checked against the mapping, created on request."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from replicator.adapters.dynamodb import dynamo_errors, wait_for_table
from replicator.errors import ConfigError, TableNotFoundError, TargetRejected
from replicator.mapping import TTL_ATTR, KeyAttribute

log = structlog.get_logger("consumers.writer.tables")



@dataclass(frozen=True, slots=True)
class TableSpec:
    """A DynamoDB table the writer needs, with the key schema the mapping gives it."""

    name: str
    source: str
    key: tuple[KeyAttribute, ...]


def ensure_tables(client: Any, specs: Iterable[TableSpec], *, create: bool) -> list[str]:
    """Check every table exists with the mapping's key schema; create missing ones if asked.

    Returns the names created. A missing table without ``create`` is a :class:`ConfigError`.
    """
    created: list[str] = []
    for spec in specs:
        try:
            with dynamo_errors("describing the table", spec.name):
                desc = client.describe_table(TableName=spec.name)["Table"]
        except TableNotFoundError:
            if not create:
                raise ConfigError(f"DynamoDB table {spec.name!r} (for {spec.source}) does not exist; "
                                  f"create it or run `replicator write --create-tables`") from None
            _create(client, spec)
            created.append(spec.name)
            continue
        types = {a["AttributeName"]: a["AttributeType"] for a in desc.get("AttributeDefinitions", ())}
        have = [(k["AttributeName"], k["KeyType"], types.get(k["AttributeName"])) for k in desc["KeySchema"]]
        want = [(k.name, k.role, k.type) for k in spec.key]
        if have != want:
            raise ConfigError(f"DynamoDB table {spec.name!r} has key {have} but tables[source={spec.source}] "
                              f"maps to key {want}; fix tables[].key or use another target table")
    return created


def _create(client: Any, spec: TableSpec) -> None:
    try:
        with dynamo_errors("creating the table", spec.name):
            client.create_table(
                TableName=spec.name, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": k.name, "KeyType": k.role} for k in spec.key],
                AttributeDefinitions=[{"AttributeName": k.name, "AttributeType": k.type} for k in spec.key],
            )
    except TargetRejected as exc:
        if exc.code != "ResourceInUseException":  # another writer created it first
            raise
    wait_for_table(client, spec.name)
    try:
        with dynamo_errors("enabling TTL", spec.name):
            client.update_time_to_live(TableName=spec.name,
                                       TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTR})
    except TargetRejected as exc:  # already enabled by a writer that raced us
        if exc.code != "ValidationException":
            raise
    log.info("table_created", table=spec.name, source=spec.source, billing="PAY_PER_REQUEST", ttl=TTL_ATTR)

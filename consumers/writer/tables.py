"""The DynamoDB tables the writer needs: checked against the mapping, created on request.

A table carries the GSIs of the access patterns its sources declare (``tables[].indexes``,
DESIGN §3.5), projection ALL. ``replicator write --create-tables`` creates missing tables with
their GSIs (on-demand billing, TTL on ``_ttl``) and adds missing GSIs to existing tables, one
UpdateTable at a time (DynamoDB takes one GSI creation per call), waiting until each is ACTIVE.
Without ``--create-tables`` a missing table or GSI stops the writer with a message saying so.

Every table carries a DynamoDB stream with ``NEW_AND_OLD_IMAGES``: the way back from phase 5
is reverse replication of that stream into MySQL (``replicator reverse``, DESIGN §3.6).
``--create-tables`` creates tables with it and turns it on for an existing table that has no
stream (UpdateTable, then a bounded wait); a stream of another view type is refused, since
replacing it would cut off whoever reads it. Without ``--create-tables`` a missing stream is
only a warning: the writer does not need it, and ``replicator reverse`` refuses to start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from replicator.adapters.dynamodb import dynamo_errors, wait_for_table
from replicator.errors import ConfigError, TableNotFoundError, TargetRejected, TargetUnavailable
from replicator.mapping import TTL_ATTR, GlobalIndex, KeyAttribute

log = structlog.get_logger("consumers.writer.tables")

#: How long ``--create-tables`` waits for a GSI that DynamoDB builds (it backfills existing items).
INDEX_TIMEOUT_S = 900.0
#: How long ``--create-tables`` waits for a stream it turned on to be enabled.
STREAM_TIMEOUT_S = 120.0
#: The stream view reverse replication needs: the new image to apply, the old one for deletes.
STREAM_VIEW = "NEW_AND_OLD_IMAGES"
STREAM_SPECIFICATION = {"StreamEnabled": True, "StreamViewType": STREAM_VIEW}


@dataclass(frozen=True, slots=True)
class SourceScope:
    """One source table written to a DynamoDB table, as a GSI query must tell it apart."""

    source: str
    key_prefix: str  # the literal start of its key.pk template ("" for a column key)
    indexed: bool  # it declares access patterns


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A DynamoDB table the writer needs, with the key schema and GSIs the mapping gives it."""

    name: str
    source: str
    key: tuple[KeyAttribute, ...]
    indexes: tuple[GlobalIndex, ...] = ()
    scopes: tuple[SourceScope, ...] = ()

    def attribute_definitions(self) -> list[dict[str, str]]:
        types = {k.name: k.type for k in self.key}
        for gsi in self.indexes:
            types.update({k.attribute: k.type for k in gsi.key})
        return [{"AttributeName": name, "AttributeType": typ} for name, typ in types.items()]


def merge_specs(first: TableSpec, other: TableSpec) -> TableSpec:
    """One table written by two sources (same key, checked by the caller): the union of their GSIs.

    The same GSI declared twice is one GSI and must have the same key; one attribute must have one
    type across the table's key and all its GSIs. Anything else is a :class:`ConfigError`. (A GSI
    query keeps its own source's items by ``_table``; that no two sources write one item is
    :func:`replicator.mapping.model.check_model`'s.)
    """
    indexes = {g.name: g for g in first.indexes}
    for gsi in other.indexes:
        mine = indexes.get(gsi.name)
        if mine is not None and mine.schema != gsi.schema:
            raise ConfigError(f"tables {first.source} and {other.source} share DynamoDB table "
                              f"{first.name!r} but declare access pattern {gsi.name!r} with different keys "
                              f"({list(mine.schema)} vs {list(gsi.schema)}); declare it the same way or "
                              f"give one another name")
        indexes.setdefault(gsi.name, gsi)
    merged = TableSpec(first.name, first.source, first.key, tuple(indexes.values()),
                       first.scopes + other.scopes)
    types: dict[str, tuple[str, str]] = {k.name: (k.type, "the table key") for k in merged.key}
    for gsi in merged.indexes:
        for k in gsi.key:
            typ, where = types.setdefault(k.attribute, (k.type, f"GSI {gsi.name!r}"))
            if typ != k.type:
                raise ConfigError(f"DynamoDB table {first.name!r} (tables {first.source} and "
                                  f"{other.source}): attribute {k.attribute!r} keys {where} as {typ} but GSI "
                                  f"{gsi.name!r} as {k.type}; rename one of the columns (tables[].rename)")
    return merged


def ensure_tables(client: Any, specs: Iterable[TableSpec], *, create: bool,
                  index_timeout_s: float = INDEX_TIMEOUT_S, sleep: Callable[[float], None] = time.sleep,
                  clock: Callable[[], float] = time.monotonic, stream: bool = True) -> list[str]:
    """Check every table exists with the mapping's key schema and GSIs; create what is missing if asked.

    Returns the names of the tables created. A missing table or GSI without ``create`` is a
    :class:`ConfigError`; a GSI not ACTIVE within ``index_timeout_s`` is a
    :class:`TargetUnavailable` (DynamoDB goes on building it: run again later).

    ``stream=False`` leaves streams alone: for tests and benchmarks that never go back from
    phase 5. Streams cost DynamoDB Local dearly once it holds many stream records (those of
    deleted tables too, kept 24 h): measured on the local stack after a test run, a put into a
    new table with a stream took 68 ms (p50) against 2.3 ms without; on a fresh DynamoDB Local
    both take about 2 ms. AWS shows no such cost.
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
            _create(client, spec, stream)
            created.append(spec.name)
            desc = _describe(client, spec.name)
        types = {a["AttributeName"]: a["AttributeType"] for a in desc.get("AttributeDefinitions", ())}
        have = [(k["AttributeName"], k["KeyType"], types.get(k["AttributeName"])) for k in desc["KeySchema"]]
        want = [(k.name, k.role, k.type) for k in spec.key]
        if have != want:
            raise ConfigError(f"DynamoDB table {spec.name!r} has key {have} but tables[source={spec.source}] "
                              f"maps to key {want}; fix tables[].key or use another target table")
        _ensure_indexes(client, spec, desc, create, _Deadline(index_timeout_s, sleep, clock))
        if stream:
            _ensure_stream(client, spec, create, _Deadline(STREAM_TIMEOUT_S, sleep, clock))
    return created


def _describe(client: Any, table: str) -> dict[str, Any]:
    with dynamo_errors("describing the table", table):
        return client.describe_table(TableName=table)["Table"]  # type: ignore[no-any-return]


def _create(client: Any, spec: TableSpec, stream: bool = True) -> None:
    extra: dict[str, Any] = {"StreamSpecification": STREAM_SPECIFICATION} if stream else {}
    if spec.indexes:
        extra["GlobalSecondaryIndexes"] = [gsi.definition() for gsi in spec.indexes]
    try:
        with dynamo_errors("creating the table", spec.name):
            client.create_table(
                TableName=spec.name, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": k.name, "KeyType": k.role} for k in spec.key],
                AttributeDefinitions=spec.attribute_definitions(), **extra,
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
    log.info("table_created", table=spec.name, source=spec.source, billing="PAY_PER_REQUEST", ttl=TTL_ATTR,
             indexes=[gsi.name for gsi in spec.indexes], stream=STREAM_VIEW if stream else None)


# --------------------------------------------------------------------------- the stream


def stream_view(desc: dict[str, Any]) -> str | None:
    """The view type of the table's enabled stream, from DescribeTable; None when it has none."""
    spec = desc.get("StreamSpecification") or {}
    if not spec.get("StreamEnabled") or not desc.get("LatestStreamArn"):
        return None
    return str(spec.get("StreamViewType", ""))


def _ensure_stream(client: Any, spec: TableSpec, create: bool, deadline: _Deadline) -> None:
    desc = _describe(client, spec.name)
    view = stream_view(desc)
    if view == STREAM_VIEW:
        return
    if view is not None:
        raise ConfigError(
            f"DynamoDB table {spec.name!r} has a stream of view type {view}, but reverse replication "
            f"(the way back from phase 5) needs {STREAM_VIEW}; disable that stream (UpdateTable "
            f"StreamEnabled=false, once nothing reads it) and run `replicator write --create-tables` again")
    if not create:
        log.warning("dynamodb_stream_missing", table=spec.name, source=spec.source, needs=STREAM_VIEW,
                    hint="`replicator write --create-tables` turns it on; `replicator reverse` needs it")
        return
    give_up = deadline.clock() + deadline.timeout_s
    while True:
        if stream_view(desc) == STREAM_VIEW and desc.get("TableStatus", "ACTIVE") == "ACTIVE":
            break
        if stream_view(desc) is None and desc.get("TableStatus", "ACTIVE") == "ACTIVE":
            try:
                with dynamo_errors("turning the stream on", spec.name):
                    client.update_table(TableName=spec.name, StreamSpecification=STREAM_SPECIFICATION)
            except (TargetUnavailable, TargetRejected) as exc:
                # A slow UpdateTable that timed out, or another writer's in progress: look again.
                log.info("dynamodb_stream_not_yet_enabled", table=spec.name, error=str(exc))
        if deadline.clock() >= give_up:
            raise TargetUnavailable(
                f"the stream of DynamoDB table {spec.name!r} is not enabled {deadline.timeout_s:.0f} s after "
                f"turning it on; run `replicator write --create-tables` again later", code="StreamNotEnabled")
        deadline.sleep(0.5)
        desc = _describe(client, spec.name)
    log.info("dynamodb_stream_enabled", table=spec.name, source=spec.source, view=STREAM_VIEW)


# --------------------------------------------------------------------------- GSIs


@dataclass(frozen=True)
class _Deadline:
    timeout_s: float
    sleep: Callable[[float], None]
    clock: Callable[[], float]


def _gsis(desc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {g["IndexName"]: g for g in desc.get("GlobalSecondaryIndexes", ())}


def _ensure_indexes(client: Any, spec: TableSpec, desc: dict[str, Any], create: bool,
                    deadline: _Deadline) -> None:
    for gsi in spec.indexes:
        present = _gsis(desc).get(gsi.name)
        if present is None:
            if not create:
                raise ConfigError(
                    f"DynamoDB table {spec.name!r} has no GSI {gsi.name!r}, which access pattern "
                    f"tables[source={spec.source}].indexes[{gsi.name}] needs; run `replicator write "
                    f"--create-tables` to add it (DynamoDB builds it from the existing items)")
            _check_attribute_types(spec, gsi, desc)
            _add_index(client, spec, gsi, desc)
        else:
            _check_index(spec, gsi, present, desc)
        if create:
            desc = _wait_for_index(client, spec.name, gsi.name, deadline)
        elif present is not None and present.get("IndexStatus", "ACTIVE") != "ACTIVE":
            log.warning("gsi_not_active", table=spec.name, index=gsi.name, status=present.get("IndexStatus"))


def _check_index(spec: TableSpec, gsi: GlobalIndex, present: dict[str, Any], desc: dict[str, Any]) -> None:
    types = {a["AttributeName"]: a["AttributeType"] for a in desc.get("AttributeDefinitions", ())}
    have = tuple((k["AttributeName"], k["KeyType"], types.get(k["AttributeName"], "?"))
                 for k in present["KeySchema"])
    projection = present.get("Projection", {}).get("ProjectionType")
    if have != gsi.schema or projection != "ALL":
        raise ConfigError(
            f"DynamoDB table {spec.name!r} has a GSI {gsi.name!r} keyed {list(have)} with projection "
            f"{projection}, but tables[source={spec.source}].indexes[{gsi.name}] needs {list(gsi.schema)} "
            f"with projection ALL; delete that GSI in DynamoDB or give the access pattern another name")


def _check_attribute_types(spec: TableSpec, gsi: GlobalIndex, desc: dict[str, Any]) -> None:
    types = {a["AttributeName"]: a["AttributeType"] for a in desc.get("AttributeDefinitions", ())}
    for k in gsi.key:
        if types.get(k.attribute, k.type) != k.type:
            raise ConfigError(
                f"DynamoDB table {spec.name!r} already defines attribute {k.attribute!r} as "
                f"{types[k.attribute]} (for its key or another GSI), but access pattern "
                f"tables[source={spec.source}].indexes[{gsi.name}] keys it as {k.type}; rename the column "
                f"(tables[].rename) or drop the other GSI")


def _add_index(client: Any, spec: TableSpec, gsi: GlobalIndex, desc: dict[str, Any]) -> None:
    create: dict[str, Any] = gsi.definition()
    billing = desc.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
    throughput = desc.get("ProvisionedThroughput", {})
    if billing != "PAY_PER_REQUEST" and throughput.get("ReadCapacityUnits"):
        create["ProvisionedThroughput"] = {"ReadCapacityUnits": throughput["ReadCapacityUnits"],
                                           "WriteCapacityUnits": throughput["WriteCapacityUnits"]}
    try:
        with dynamo_errors(f"adding GSI {gsi.name!r}", spec.name):
            client.update_table(TableName=spec.name, AttributeDefinitions=gsi.attribute_definitions(),
                                GlobalSecondaryIndexUpdates=[{"Create": create}])
    except TargetRejected:
        if gsi.name not in _gsis(_describe(client, spec.name)):
            raise
        return  # another writer added it first
    log.info("gsi_created", table=spec.name, index=gsi.name, key=[k.attribute for k in gsi.key])


def _wait_for_index(client: Any, table: str, index: str, deadline: _Deadline) -> dict[str, Any]:
    """Until the GSI and the table are ACTIVE (the next UpdateTable needs the table ACTIVE)."""
    give_up = deadline.clock() + deadline.timeout_s
    while True:
        desc = _describe(client, table)
        status = _gsis(desc).get(index, {}).get("IndexStatus")
        if status == "ACTIVE" and desc.get("TableStatus", "ACTIVE") == "ACTIVE":
            return desc
        if deadline.clock() >= give_up:
            raise TargetUnavailable(
                f"GSI {index!r} of DynamoDB table {table!r} is still {status or 'missing'} after "
                f"{deadline.timeout_s:.0f} s (DynamoDB builds it from the table's items; a large table takes "
                f"long); run `replicator write --create-tables` again later", code="IndexNotActive")
        deadline.sleep(1.0)

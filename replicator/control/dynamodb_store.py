"""Control store on a DynamoDB control table (``dynamodb.table_prefix`` + ``control.table``).

The table (key ``pk`` S, ``sk`` S, on-demand) is created on first use when missing. Items::

    pk="phase"          sk="state"          epoch N, doc S (JSON phase document, flags included)
    pk="history"        sk=<epoch, 12 digits>  doc S  (one per change; written only with the state)
    pk="counter#<name>" sk=<minute bucket, 12 digits>  n N, expires_at N (TTL)
    pk="marker"         sk=<name>           doc S

A change is one ``TransactWriteItems``: the state conditional on the stored epoch plus the
history item conditional on not existing, so the state is never half-written and of two
concurrent operators exactly one wins. There is no change feed: watchers poll.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import orjson
import structlog

from replicator.adapters.dynamodb import dynamo_errors, dynamodb_client, wait_for_table
from replicator.backoff import Backoff
from replicator.control.state import HistoryEntry, PhaseState, bucket_of, buckets_between
from replicator.errors import (
    ControlStoreUnavailable,
    EpochConflict,
    ReplicatorError,
    TableNotFoundError,
    TargetRejected,
    TransactionCancelled,
)
from replicator.settings import DynamoDBSettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = structlog.get_logger(__name__)

_PHASE_KEY = {"pk": {"S": "phase"}, "sk": {"S": "state"}}
_TTL_ATTRIBUTE = "expires_at"
_CAS_ATTEMPTS = 20  # TransactionConflict retries; a lost condition check is never retried


@contextmanager
def _unavailable(what: str) -> Iterator[None]:
    try:
        with dynamo_errors(what):
            yield
    except ControlStoreUnavailable:
        raise
    except ReplicatorError as exc:
        raise ControlStoreUnavailable(f"control store (DynamoDB) failed while {what}: {exc}") from exc


def _sk(n: int) -> str:
    return f"{n:012d}"


class DynamoDBControlStore:
    def __init__(
        self, table: str, *, endpoint_url: str | None, region: str, retention_s: float,
        poll_interval_s: float = 0.2,
    ) -> None:
        self.table = table
        self._endpoint_url = endpoint_url
        self._region = region
        self._retention_s = int(retention_s)
        self._poll_interval_s = poll_interval_s
        self._client: DynamoDBClient | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._client is not None:
            return
        client = dynamodb_client(DynamoDBSettings(endpoint_url=self._endpoint_url, region=self._region))
        with _unavailable(f"opening the control table {self.table!r}"):
            self._ensure_table(client)
        self._client = client

    def _ensure_table(self, client: DynamoDBClient) -> None:
        try:
            with dynamo_errors("describing the control table", self.table):
                status = client.describe_table(TableName=self.table)["Table"].get("TableStatus")
            if status == "ACTIVE":
                return
        except TableNotFoundError:
            status = None
        if status is not None:  # being created by another process: wait for it
            wait_for_table(client, self.table)
            return
        try:
            with dynamo_errors("creating the control table", self.table):
                client.create_table(
                TableName=self.table, BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
            )
            log.info("control_table_created", table=self.table)
        except TargetRejected as exc:
            if exc.code != "ResourceInUseException":
                raise
            # another process created it at the same moment
        wait_for_table(client, self.table)
        try:
            with dynamo_errors("enabling TTL on the control table", self.table):
                client.update_time_to_live(
                    TableName=self.table,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": _TTL_ATTRIBUTE},
                )
        except TargetRejected as exc:  # already enabled by a concurrent creator
            log.debug("control_table_ttl_not_set", table=self.table, error=str(exc))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> DynamoDBControlStore:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _c(self) -> DynamoDBClient:
        if self._client is None:
            raise RuntimeError("DynamoDBControlStore used before start()")
        return self._client

    # ------------------------------------------------------------------ phase
    def get_phase(self) -> PhaseState:
        with _unavailable("reading the phase"):
            item = self._c.get_item(TableName=self.table, Key=_PHASE_KEY, ConsistentRead=True).get("Item")
        if item is None:
            return PhaseState()
        return PhaseState.from_doc(orjson.loads(item["doc"]["S"]))

    def compare_and_set(self, new: PhaseState, entry: HistoryEntry) -> None:
        expected = new.epoch - 1
        if expected == 0:
            condition, values = "attribute_not_exists(pk)", None
        else:
            condition, values = "epoch = :expected", {":expected": {"N": str(expected)}}
        put_state: dict[str, Any] = {
            "TableName": self.table,
            "Item": {**_PHASE_KEY, "epoch": {"N": str(new.epoch)},
                     "doc": {"S": orjson.dumps(new.to_doc()).decode()}},
            "ConditionExpression": condition,
        }
        if values:
            put_state["ExpressionAttributeValues"] = values
        put_history = {
            "TableName": self.table,
            "Item": {"pk": {"S": "history"}, "sk": {"S": _sk(new.epoch)},
                     "doc": {"S": orjson.dumps(entry.to_doc()).decode()}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }
        backoff = Backoff(base_s=0.01, cap_s=0.5)
        for _ in range(_CAS_ATTEMPTS):
            try:
                with _unavailable("changing the phase"):
                    self._c.transact_write_items(TransactItems=[{"Put": put_state}, {"Put": put_history}])  # type: ignore[typeddict-item]
                return
            except ControlStoreUnavailable as exc:
                cancelled = exc.__cause__
                if not isinstance(cancelled, TransactionCancelled):
                    raise
                if "ConditionalCheckFailed" in cancelled.reasons:
                    raise EpochConflict(expected, self._stored_epoch()) from exc
                # TransactionConflict: another transaction held the item; neither condition was
                # evaluated yet, so trying again is safe and decides the race.
                time.sleep(backoff.next())
        raise ControlStoreUnavailable(
            f"control store (DynamoDB): the phase change kept conflicting after {_CAS_ATTEMPTS} tries"
        )

    def _stored_epoch(self) -> int | None:
        try:
            return self.get_phase().epoch
        except ControlStoreUnavailable:
            return None

    def history(self) -> list[HistoryEntry]:
        entries: list[HistoryEntry] = []
        with _unavailable("reading the phase history"):
            pages = self._c.get_paginator("query").paginate(
                TableName=self.table, KeyConditionExpression="pk = :h",
                ExpressionAttributeValues={":h": {"S": "history"}}, ConsistentRead=True,
            )
            for page in pages:
                entries += [HistoryEntry.from_doc(orjson.loads(i["doc"]["S"])) for i in page["Items"]]
        return entries

    def wait_for_change(self, known_epoch: int, timeout: float) -> PhaseState | None:
        deadline = time.monotonic() + timeout
        while True:
            state = self.get_phase()
            if state.epoch != known_epoch:
                return state
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(self._poll_interval_s, remaining))

    # ------------------------------------------------------------------ counters
    def incr(self, name: str, amount: int = 1, at: float | None = None) -> None:
        self.incr_many({name: amount}, at)

    def incr_many(self, amounts: dict[str, int], at: float | None = None) -> None:
        ts = time.time() if at is None else at
        bucket = bucket_of(ts)
        expires = int(ts) + self._retention_s
        with _unavailable("counting"):
            for name, amount in amounts.items():
                if amount == 0:
                    continue
                self._c.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": f"counter#{name}"}, "sk": {"S": _sk(bucket)}},
                    UpdateExpression="ADD n :a SET #ttl = :e",
                    ExpressionAttributeNames={"#ttl": _TTL_ATTRIBUTE},
                    ExpressionAttributeValues={":a": {"N": str(amount)}, ":e": {"N": str(expires)}},
                )

    def window_sum(self, name: str, since: float, until: float) -> int:
        buckets = buckets_between(since, until)
        if not buckets:
            return 0
        total = 0
        with _unavailable("summing a counter"):
            pages = self._c.get_paginator("query").paginate(
                TableName=self.table, KeyConditionExpression="pk = :p AND sk BETWEEN :lo AND :hi",
                ExpressionAttributeValues={
                    ":p": {"S": f"counter#{name}"},
                    ":lo": {"S": _sk(buckets.start)}, ":hi": {"S": _sk(buckets.stop - 1)},
                },
                ProjectionExpression="n", ConsistentRead=True,
            )
            for page in pages:
                total += sum(int(i["n"]["N"]) for i in page["Items"])
        return total

    # ------------------------------------------------------------------ markers
    def put_marker(self, name: str, doc: dict[str, Any]) -> None:
        with _unavailable("writing a marker"):
            self._c.put_item(TableName=self.table, Item={
                "pk": {"S": "marker"}, "sk": {"S": name}, "doc": {"S": orjson.dumps(doc).decode()},
            })

    def get_marker(self, name: str) -> dict[str, Any] | None:
        with _unavailable("reading a marker"):
            item = self._c.get_item(
                TableName=self.table, Key={"pk": {"S": "marker"}, "sk": {"S": name}}, ConsistentRead=True,
            ).get("Item")
        return None if item is None else cast("dict[str, Any]", orjson.loads(item["doc"]["S"]))

    def delete_marker(self, name: str) -> None:
        with _unavailable("deleting a marker"):
            self._c.delete_item(TableName=self.table, Key={"pk": {"S": "marker"}, "sk": {"S": name}})

    def list_markers(self, prefix: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        with _unavailable("listing markers"):
            # An empty string is not a valid key value: no prefix means every marker.
            condition = "pk = :m AND begins_with(sk, :p)" if prefix else "pk = :m"
            values = {":m": {"S": "marker"}, ":p": {"S": prefix}} if prefix else {":m": {"S": "marker"}}
            pages = self._c.get_paginator("query").paginate(
                TableName=self.table, KeyConditionExpression=condition,
                ExpressionAttributeValues=values, ConsistentRead=True,
            )
            for page in pages:
                for i in page["Items"]:
                    out[i["sk"]["S"]] = orjson.loads(i["doc"]["S"])
        return out

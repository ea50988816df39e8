"""The conditional applier's handling of DynamoDB's answers (a scripted client, no network)."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from consumers.writer.applier import ConditionalApplier, default_apply_mode
from replicator.backoff import Backoff
from replicator.errors import TargetFatalError
from replicator.mapping import ConditionalWrite


def _write(i: int) -> ConditionalWrite:
    key = {"id": {"N": str(i)}}
    return ConditionalWrite("t", key, {**key, "_version": {"N": "5"}}, 5, tombstone=False)


def _error(code: str, status: int = 400, reasons: list[dict[str, str]] | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": code},
                                "ResponseMetadata": {"HTTPStatusCode": status}}
    if reasons is not None:
        response["CancellationReasons"] = reasons
    return ClientError(response, "TransactWriteItems")  # type: ignore[arg-type]


class ScriptedClient:
    """Answers transact_write_items / put_item from a script of exceptions (None = success)."""

    def __init__(self, script: list[ClientError | None]) -> None:
        self.script = script
        self.calls: list[tuple[str, int]] = []

    def transact_write_items(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("transact", len(kw["TransactItems"])))
        return self._next()

    def put_item(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("put", 1))
        return self._next()

    def _next(self) -> dict[str, Any]:
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        return {}


def _apply(client: ScriptedClient, n: int) -> list[tuple[str, str]]:
    applier = ConditionalApplier(client, mode="transact", concurrency=1,  # type: ignore[arg-type]
                                 backoff=Backoff(base_s=0), sleep=lambda s: None)
    applier.start()
    try:
        results = applier.apply([_write(i) for i in range(n)])
        return sorted((r.write.key["id"]["N"], r.outcome) for r in results)
    finally:
        applier.close()


def test_cancelled_transaction_counts_failed_conditions_as_replays_and_resends_the_rest() -> None:
    client = ScriptedClient([_error("TransactionCanceledException", reasons=[
        {"Code": "ConditionalCheckFailed"}, {"Code": "None"}, {"Code": "None"}])])
    assert _apply(client, 3) == [("0", "replayed"), ("1", "applied"), ("2", "applied")]
    assert client.calls == [("transact", 3), ("transact", 2)]


def test_throttling_is_retried_until_it_succeeds() -> None:
    client = ScriptedClient([_error("ThrottlingException")] * 5 + [_error("InternalServerError", 500)])
    assert _apply(client, 2) == [("0", "applied"), ("1", "applied")]
    assert len(client.calls) == 7


def test_an_invalid_item_is_rejected_alone() -> None:
    client = ScriptedClient([_error("TransactionCanceledException", reasons=[
        {"Code": "None"}, {"Code": "ValidationError", "Message": "bad"}])])
    assert _apply(client, 2) == [("0", "applied"), ("1", "rejected")]


def test_a_missing_table_is_fatal() -> None:
    with pytest.raises(TargetFatalError, match="--create-tables"):
        _apply(ScriptedClient([_error("ResourceNotFoundException")]), 1)


def test_a_transaction_carries_up_to_100_items() -> None:
    client = ScriptedClient([])
    assert len(_apply(client, 201)) == 201
    assert sorted(client.calls) == [("put", 1), ("transact", 100), ("transact", 100)]  # one item: a put


def test_the_default_mode_is_one_conditional_put_per_item() -> None:
    client = ScriptedClient([])
    applier = ConditionalApplier(client, concurrency=2)  # type: ignore[arg-type]
    applier.start()
    try:
        assert [r.outcome for r in applier.apply([_write(i) for i in range(3)])] == ["applied"] * 3
    finally:
        applier.close()
    assert client.calls == [("put", 1)] * 3


@pytest.mark.parametrize(("endpoint", "mode"), [
    (None, "put"),
    ("https://dynamodb.us-east-1.amazonaws.com", "put"),
    ("https://dynamodb-fips.us-gov-west-1.amazonaws.com", "put"),
    ("https://vpce-0a1b-2c3d.dynamodb.eu-west-1.vpce.amazonaws.com", "put"),
    ("http://127.0.0.1:18000", "transact"),
    ("http://dynamodb-local:8000", "transact"),
])
def test_the_default_apply_mode_is_put_on_aws_and_transact_on_dynamodb_local(endpoint: str | None,
                                                                                mode: str) -> None:
    assert default_apply_mode(endpoint) == mode

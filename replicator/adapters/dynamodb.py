"""The door to DynamoDB (boto3 / botocore): one client factory, one error translation.

:func:`dynamodb_client` builds every DynamoDB client of the product (writer, control store,
probes, backfill, reconcile, the application client) from
:class:`~replicator.settings.DynamoDBSettings`; :func:`dynamodbstreams_client` the DynamoDB
Streams client of the reverse replication. :func:`dynamo_errors` maps botocore exceptions of
both into the error tree, one class per decision the caller makes:

=====================================================  ====================================
DynamoDB / botocore says                               raised
=====================================================  ====================================
throttling, 5xx, transaction conflicts, connection     :class:`TargetUnavailable` (retry)
``ConditionalCheckFailedException``                    :class:`ConditionFailed`
``TransactionCanceledException``                       :class:`TransactionCancelled` (reasons)
``ValidationException`` and other 4xx                  :class:`TargetRejected` (``code``)
table missing, access denied, no/bad credentials       :class:`TargetFatalError` (exit 2)
Streams: ``ExpiredIteratorException``                  :class:`TargetUnavailable` (``code``):
                                                       open the iterator again
Streams: ``TrimmedDataAccessException``                :class:`TargetRejected` (``code``): the
                                                       caller decides whether data was lost
=====================================================  ====================================
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    WaiterError,
)

from replicator.errors import (
    ConditionFailed,
    TableNotFoundError,
    TargetFatalError,
    TargetRejected,
    TargetUnavailable,
    TransactionCancelled,
)
from replicator.settings import DynamoDBSettings

__all__ = [
    "EXPIRED_ITERATOR", "RETRYABLE_CODES", "RETRYABLE_REASONS", "TRIMMED_DATA", "dynamo_errors",
    "dynamodb_client", "dynamodbstreams_client", "wait_for_table",
]

RETRYABLE_CODES = frozenset((
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "InternalFailure", "ServiceUnavailable", "TransactionConflictException",
    "TransactionInProgressException", "LimitExceededException",
))
# Per-item cancellation reasons of a transaction that are worth sending again after a pause.
RETRYABLE_REASONS = frozenset((
    "ThrottlingError", "ProvisionedThroughputExceeded", "TransactionConflict", "RequestLimitExceeded",
    "InternalServerError",
))
#: DynamoDB Streams: a shard iterator older than 15 minutes (open a new one from the checkpoint).
EXPIRED_ITERATOR = "ExpiredIteratorException"
#: DynamoDB Streams: the records asked for are past the stream's 24 h retention.
TRIMMED_DATA = "TrimmedDataAccessException"
_DENIED_CODES = frozenset((
    "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
    "ExpiredTokenException", "MissingAuthenticationTokenException", "IncompleteSignature",
))


def dynamodb_client(cfg: DynamoDBSettings, *, attempts: int = 3, read_timeout_s: float = 10.0,
                    pool_size: int = 10) -> Any:
    """A low-level DynamoDB client. ``attempts=1`` turns botocore's own retries off, for callers
    that retry themselves and count each retry (the writer)."""
    retries: Any = (
        {"total_max_attempts": 1} if attempts <= 1 else {"max_attempts": attempts, "mode": "standard"}
    )
    with dynamo_errors("creating the DynamoDB client"):
        return boto3.client("dynamodb", endpoint_url=cfg.endpoint_url, region_name=cfg.region, config=Config(
            connect_timeout=5, read_timeout=read_timeout_s, retries=retries, max_pool_connections=pool_size))


def dynamodbstreams_client(cfg: DynamoDBSettings, *, attempts: int = 3, read_timeout_s: float = 10.0) -> Any:
    """A low-level DynamoDB Streams client (``DescribeStream``, ``GetShardIterator``,
    ``GetRecords``) for the same endpoint and region as :func:`dynamodb_client`."""
    retries: Any = (
        {"total_max_attempts": 1} if attempts <= 1 else {"max_attempts": attempts, "mode": "standard"}
    )
    with dynamo_errors("creating the DynamoDB Streams client"):
        return boto3.client("dynamodbstreams", endpoint_url=cfg.endpoint_url, region_name=cfg.region,
                            config=Config(connect_timeout=5, read_timeout=read_timeout_s, retries=retries))


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def _translate_client_error(exc: ClientError, what: str, table: str) -> Exception:
    code = error_code(exc)
    message = exc.response.get("Error", {}).get("Message", "") or str(exc)
    on = f" on {table!r}" if table else ""
    if code == "ConditionalCheckFailedException":
        return ConditionFailed(f"{what}{on}: the condition did not hold", code=code)
    if code == "TransactionCanceledException":
        reasons = exc.response.get("CancellationReasons") or []
        return TransactionCancelled(
            f"{what}{on}: transaction cancelled ({message})",
            reasons=[str(r.get("Code") or "None") for r in reasons],
            messages=[str(r.get("Message") or "") for r in reasons],
        )
    if code == EXPIRED_ITERATOR:
        return TargetUnavailable(f"{what}{on}: the shard iterator expired ({message})", code=code)
    if code == TRIMMED_DATA:
        return TargetRejected(f"{what}{on}: the records asked for were trimmed from the stream "
                              f"({message})", code=code)
    if code in RETRYABLE_CODES or _status(exc) >= 500:
        return TargetUnavailable(f"DynamoDB {code or _status(exc)} while {what}{on}: {message}",
                                 code=code or str(_status(exc)))
    if code == "ResourceNotFoundException":
        return TableNotFoundError(f"DynamoDB table {table or '(unknown)'} does not exist ({what}); create "
                                  "it, or start the writer with `replicator write --create-tables`")
    if code in _DENIED_CODES:
        return TargetFatalError(f"DynamoDB refused the credentials while {what}{on}: {code}: {message}; "
                                "check the AWS credentials (environment, profile or role) and their "
                                "permissions")
    return TargetRejected(f"DynamoDB refused {what}{on}: {code}: {message}", code=code)


@contextmanager
def dynamo_errors(what: str, table: str = "") -> Iterator[None]:
    """Translate botocore exceptions raised inside the block; ``what``/``table`` name the request."""
    try:
        yield
    except ClientError as exc:
        raise _translate_client_error(exc, what, table) from exc
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise TargetFatalError(
            f"no usable AWS credentials for DynamoDB ({exc}) while {what}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an instance/task role "
            "(DynamoDB Local accepts any non-empty values)"
        ) from exc
    except NoRegionError as exc:
        raise TargetFatalError(f"no AWS region for DynamoDB while {what}: set dynamodb.region") from exc
    except (ConnectionError, HTTPClientError, WaiterError) as exc:
        on = f" on {table}" if table else ""
        raise TargetUnavailable(f"DynamoDB unreachable while {what}{on}: {exc}; check dynamodb.endpoint_url "
                                "(REPLICATOR_DYNAMODB__ENDPOINT_URL) and dynamodb.region, and that the "
                                "endpoint runs", code=type(exc).__name__) from exc
    except BotoCoreError as exc:
        raise TargetRejected(f"DynamoDB client refused {what}: {exc}", code=type(exc).__name__) from exc


def wait_for_table(client: Any, table: str, timeout_s: float = 60.0) -> None:
    """Until ``table`` is ACTIVE (after create_table), at most ``timeout_s``."""
    with dynamo_errors("waiting for the table to become active", table):
        client.get_waiter("table_exists").wait(
            TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": max(1, int(timeout_s))})

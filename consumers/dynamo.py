"""DynamoDB adapter of the writer: tables from the mapping, and version-conditional apply.

:class:`ConditionalApplier` sends :class:`~replicator.mapping.ConditionalWrite` s (distinct
items: the caller coalesces first) with up to ``concurrency`` requests in flight, in one of
two modes:

- ``transact`` (default): ``TransactWriteItems`` of up to 25 items, every item carrying its
  own version condition. ``BatchWriteItem`` cannot be conditional, and a transaction is the
  only multi-item request that can; when it is cancelled, DynamoDB says per item why:
  ``ConditionalCheckFailed`` is a replay (done), ``None`` was merely not applied (sent again),
  throttling or conflicts are retried with backoff, ``ValidationError`` rejects that item.
- ``put``: one conditional ``PutItem`` per item (half the write capacity of a transaction on
  real DynamoDB, more requests).

Throttling, 5xx and connection errors are retried with exponential backoff and full jitter
without limit; nothing is dropped. A request DynamoDB refuses as invalid is returned as
rejected (the writer dead-letters it). A missing table or denied access is fatal.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

from replicator.aws import dynamodb_client
from replicator.errors import ConfigError, TargetFatalError, TargetUnavailable
from replicator.mapping import TTL_ATTR, ConditionalWrite, KeyAttribute, item_size
from replicator.settings import Settings

log = structlog.get_logger("consumers.dynamo")

ApplyMode = Literal["transact", "put"]
Outcome = Literal["applied", "replayed", "rejected"]

MAX_TRANSACT_ITEMS = 25
MAX_TRANSACT_BYTES = 3_500_000  # under the 4 MB request limit, with room for the conditions

RETRYABLE_CODES = frozenset((
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "InternalFailure", "ServiceUnavailable", "TransactionConflictException",
    "TransactionInProgressException", "LimitExceededException",
))
RETRYABLE_REASONS = frozenset((
    "ThrottlingError", "ProvisionedThroughputExceeded", "TransactionConflict", "RequestLimitExceeded",
    "InternalServerError",
))


class DynamoClient(Protocol):
    """The subset of the boto3 low-level client the writer uses."""

    def put_item(self, **kwargs: Any) -> dict[str, Any]: ...
    def transact_write_items(self, **kwargs: Any) -> dict[str, Any]: ...
    def describe_table(self, **kwargs: Any) -> dict[str, Any]: ...
    def create_table(self, **kwargs: Any) -> dict[str, Any]: ...
    def update_time_to_live(self, **kwargs: Any) -> dict[str, Any]: ...
    def get_waiter(self, name: str) -> Any: ...


def make_client(settings: Settings, pool_size: int | None = None) -> Any:
    """A boto3 client with its own retries off: the applier retries, visibly and without limit."""
    return dynamodb_client(settings.dynamodb.endpoint_url, settings.dynamodb.region, attempts=1,
                           read_timeout_s=30, pool_size=pool_size or settings.dynamodb.max_concurrency * 2)


@dataclass(frozen=True, slots=True)
class WriteResult:
    write: ConditionalWrite
    outcome: Outcome
    error: str = ""  # why DynamoDB rejected it (outcome "rejected")


@dataclass
class Backoff:
    """Exponential backoff with full jitter: ``uniform(0, min(cap, base * 2**attempt))``."""

    base_s: float = 0.05
    cap_s: float = 5.0
    rng: random.Random | None = None

    def delay(self, attempt: int) -> float:
        rng = self.rng or random
        return rng.uniform(0, min(self.cap_s, self.base_s * 2 ** min(attempt, 30)))


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def chunk_writes(writes: list[ConditionalWrite], max_items: int) -> list[list[ConditionalWrite]]:
    """Split into requests of at most ``max_items`` items and ~3.5 MB."""
    chunks: list[list[ConditionalWrite]] = []
    current: list[ConditionalWrite] = []
    size = 0
    for w in writes:
        n = item_size(w.item)
        if current and (len(current) >= max_items or size + n > MAX_TRANSACT_BYTES):
            chunks.append(current)
            current, size = [], 0
        current.append(w)
        size += n
    if current:
        chunks.append(current)
    return chunks


class ConditionalApplier:
    """Applies distinct conditional writes concurrently; see the module docstring."""

    def __init__(self, client: DynamoClient, *, mode: ApplyMode = "transact", concurrency: int = 8,
                 backoff: Backoff | None = None, sleep: Callable[[float], None] = time.sleep,
                 on_retry: Callable[[str], None] | None = None,
                 on_chunk: Callable[[float], None] | None = None) -> None:
        self.client = client
        self.mode = mode
        self.concurrency = concurrency
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self._on_retry = on_retry or (lambda reason: None)
        self._on_chunk = on_chunk or (lambda seconds: None)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.pending = 0  # writes handed to apply() and not yet acknowledged (the backlog)

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="dynamo-apply")

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def apply(self, writes: list[ConditionalWrite]) -> list[WriteResult]:
        """Send every write; returns when DynamoDB acknowledged (or rejected) each one."""
        if not writes:
            return []
        if self._pool is None:
            raise RuntimeError("ConditionalApplier.apply() before start()")
        size = MAX_TRANSACT_ITEMS if self.mode == "transact" else 1
        chunks = chunk_writes(writes, size)
        with self._lock:
            self.pending += len(writes)
        results: list[WriteResult] = []
        for chunk_results in self._pool.map(self._apply_chunk, chunks):
            results.extend(chunk_results)
        return results

    # ----------------------------------------------------------------- one request

    def _apply_chunk(self, chunk: list[ConditionalWrite]) -> list[WriteResult]:
        started = time.monotonic()
        try:
            return self._send(chunk)
        finally:
            with self._lock:
                self.pending -= len(chunk)
            self._on_chunk(time.monotonic() - started)

    def _send(self, chunk: list[ConditionalWrite]) -> list[WriteResult]:
        results: list[WriteResult] = []
        pending = chunk
        attempt = 0
        while pending:
            try:
                if len(pending) == 1:
                    results.append(self._put(pending[0]))
                    pending = []
                else:
                    pending, retry = self._transact(pending, results)
                    if retry:
                        attempt = self._wait(attempt, "TransactionCanceled")
                    continue
            except ClientError as exc:
                code = _code(exc)
                if code in RETRYABLE_CODES or _status(exc) >= 500:
                    attempt = self._wait(attempt, code or str(_status(exc)))
                    continue
                if code == "ValidationException" and len(pending) > 1:
                    # Which item is invalid? Send them one by one (the single-put path tells).
                    for w in pending:
                        results.extend(self._send([w]))
                    pending = []
                    continue
                if code == "ValidationException":
                    results.append(WriteResult(pending[0], "rejected", f"{code}: {exc}"))
                    pending = []
                    continue
                raise self._fatal(exc, pending[0].table) from exc
            except (ConnectionError, HTTPClientError) as exc:
                attempt = self._wait(attempt, type(exc).__name__)
            except BotoCoreError as exc:
                raise TargetUnavailable(f"DynamoDB client error: {exc}") from exc
        return results

    def _put(self, w: ConditionalWrite) -> WriteResult:
        try:
            self.client.put_item(**w.put_item_params())
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return WriteResult(w, "replayed")
            raise
        return WriteResult(w, "applied")

    def _transact(self, pending: list[ConditionalWrite],
                  results: list[WriteResult]) -> tuple[list[ConditionalWrite], bool]:
        """One transaction; returns (writes still to send, whether to back off first)."""
        try:
            self.client.transact_write_items(TransactItems=[w.transact_item() for w in pending])
        except ClientError as exc:
            if _code(exc) != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            if len(reasons) != len(pending):
                return pending, True
            again: list[ConditionalWrite] = []
            retry = False
            for w, reason in zip(pending, reasons, strict=True):
                code = str(reason.get("Code") or "None")
                if code == "ConditionalCheckFailed":
                    results.append(WriteResult(w, "replayed"))
                elif code == "ValidationError":
                    results.append(WriteResult(w, "rejected", f"{code}: {reason.get('Message', '')}"))
                else:
                    again.append(w)
                    retry = retry or code != "None"
            return again, retry
        results.extend(WriteResult(w, "applied") for w in pending)
        return [], False

    def _wait(self, attempt: int, reason: str) -> int:
        self._on_retry(reason)
        delay = self.backoff.delay(attempt)
        if attempt in (0, 4) or attempt % 20 == 19:
            log.warning("DualWrite", outcome="retry", error=reason, attempt=attempt + 1,
                        delay_s=round(delay, 3))
        self._sleep(delay)
        return attempt + 1

    @staticmethod
    def _fatal(exc: ClientError, table: str) -> TargetFatalError:
        code = _code(exc)
        if code == "ResourceNotFoundException":
            return TargetFatalError(f"DynamoDB table {table!r} does not exist; create it or start the writer "
                                    f"with --create-tables")
        return TargetFatalError(f"DynamoDB refused a write to {table!r}: {code}: {exc}; check the table "
                                f"and the credentials' permissions")


# --------------------------------------------------------------------------- tables


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A DynamoDB table the writer needs, with the key schema the mapping gives it."""

    name: str
    source: str
    key: tuple[KeyAttribute, ...]


def ensure_tables(client: DynamoClient, specs: Iterable[TableSpec], *, create: bool) -> list[str]:
    """Check every table exists with the mapping's key schema; create missing ones if asked.

    Returns the names created. A missing table without ``create`` is a :class:`ConfigError`.
    """
    created: list[str] = []
    for spec in specs:
        try:
            desc = client.describe_table(TableName=spec.name)["Table"]
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise TargetUnavailable(f"describe_table {spec.name}: {exc}") from exc
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


def _create(client: DynamoClient, spec: TableSpec) -> None:
    try:
        client.create_table(
            TableName=spec.name, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": k.name, "KeyType": k.role} for k in spec.key],
            AttributeDefinitions=[{"AttributeName": k.name, "AttributeType": k.type} for k in spec.key],
        )
    except ClientError as exc:
        if _code(exc) != "ResourceInUseException":  # another writer created it first
            raise TargetUnavailable(f"create_table {spec.name}: {exc}") from exc
    client.get_waiter("table_exists").wait(TableName=spec.name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    try:
        client.update_time_to_live(TableName=spec.name,
                                   TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTR})
    except ClientError as exc:  # already enabled by a writer that raced us
        if _code(exc) != "ValidationException":
            raise TargetUnavailable(f"update_time_to_live {spec.name}: {exc}") from exc
    log.info("table created", table=spec.name, source=spec.source, billing="PAY_PER_REQUEST", ttl=TTL_ATTR)

"""The writer's applier: version-conditional writes to DynamoDB, concurrently, retried forever.

:class:`ConditionalApplier` sends :class:`~replicator.mapping.ConditionalWrite` s (distinct
items: the caller coalesces first) with up to ``concurrency`` requests in flight, in one of
two modes:

- ``put`` (the default on AWS): one conditional ``PutItem`` per item.
- ``transact`` (the default elsewhere: DynamoDB Local): ``TransactWriteItems`` of up to 100
  items, every item carrying its own version condition. ``BatchWriteItem`` cannot be
  conditional, and a transaction is the only multi-item request that can; when it is
  cancelled, DynamoDB says per item why: ``ConditionalCheckFailed`` is a replay (done),
  ``None`` was merely not applied (sent again), throttling or conflicts are retried with
  backoff, ``ValidationError`` rejects that item.

Why ``put`` is the default on AWS (:func:`default_apply_mode`): both modes give the same
guarantees (each item's own version condition; the writer never promised atomicity across
items, and a MySQL transaction is split at the request size anyway). On AWS a transactional
write consumes twice the write capacity of a PutItem (2 WCU or WRU per KB), so ``transact``
doubles the DynamoDB bill or halves a provisioned table's throughput, and its items can be
cancelled by a conflicting write to any one of them (the phase-5 client, another writer).
What ``transact`` saves is the writer's CPU and request count (``bench/bench_writer_cost.py``:
about 0.15 against 1.1 CPU-s per 1,000 items here), worth far less than the capacity.
DynamoDB Local bills nothing and runs transactions ~3x faster than as many puts, so there
``transact`` stays the default.

Throttling, 5xx and connection errors are retried with exponential backoff and full jitter
without limit; nothing is dropped. A request DynamoDB refuses as invalid is returned as
rejected (the writer dead-letters it). A missing table or denied access is fatal.

DynamoDB is reached through :mod:`replicator.adapters.dynamodb` only: its client factory and
its error translation; nothing here sees a botocore exception.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import structlog

from replicator.adapters.dynamodb import dynamo_errors, dynamodb_client
from replicator.backoff import Backoff
from replicator.errors import (
    ConditionFailed,
    TargetRejected,
    TargetUnavailable,
    TransactionCancelled,
)
from replicator.mapping import ConditionalWrite, item_size
from replicator.mapping.conditional import combine_entries
from replicator.mapping.embedded import parent_delete, resolve_entry
from replicator.settings import Settings

log = structlog.get_logger("consumers.writer.applier")

ApplyMode = Literal["transact", "put"]
Outcome = Literal["applied", "replayed", "rejected"]

MAX_TRANSACT_ITEMS = 100  # DynamoDB's limit per TransactWriteItems (25 before September 2022)
DEFAULT_APPLY_MODE: ApplyMode = "put"  # on AWS; see the module docstring
_AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")
MAX_TRANSACT_BYTES = 3_500_000  # under the 4 MB request limit, with room for the conditions
#: Read-then-write attempts of one embedded-child or parent-delete write before backing off:
#: each attempt loses only to another write of the same item landing in between.
MAX_READ_WRITE_ATTEMPTS = 10


class DynamoClient(Protocol):
    """The subset of the boto3 low-level client the writer uses."""

    def put_item(self, **kwargs: Any) -> dict[str, Any]: ...
    def update_item(self, **kwargs: Any) -> dict[str, Any]: ...
    def get_item(self, **kwargs: Any) -> dict[str, Any]: ...
    def transact_write_items(self, **kwargs: Any) -> dict[str, Any]: ...
    def describe_table(self, **kwargs: Any) -> dict[str, Any]: ...
    def create_table(self, **kwargs: Any) -> dict[str, Any]: ...
    def update_time_to_live(self, **kwargs: Any) -> dict[str, Any]: ...
    def get_waiter(self, name: str) -> Any: ...


def make_client(settings: Settings, pool_size: int | None = None) -> Any:
    """A boto3 client with its own retries off: the applier retries, visibly and without limit."""
    return dynamodb_client(settings.dynamodb, attempts=1, read_timeout_s=30,
                           pool_size=pool_size or settings.dynamodb.max_concurrency * 2)


def default_apply_mode(endpoint_url: str | None) -> ApplyMode:
    """``put`` against AWS (no endpoint, or an AWS one: FIPS, VPC endpoints), ``transact`` against
    anything else (DynamoDB Local), where capacity costs nothing."""
    if endpoint_url is None:
        return DEFAULT_APPLY_MODE
    host = (urlsplit(endpoint_url).hostname or "").lower()
    return DEFAULT_APPLY_MODE if host.endswith(_AWS_HOSTS) else "transact"


@dataclass(frozen=True, slots=True)
class WriteResult:
    write: ConditionalWrite
    outcome: Outcome
    error: str = ""  # why DynamoDB rejected it (outcome "rejected")



def chunk_writes(writes: list[ConditionalWrite], max_items: int) -> list[list[ConditionalWrite]]:
    """Split into requests of at most ``max_items`` items and ~3.5 MB, each touching an item at
    most once: the entries of one parent item go to different requests (first fit, so that the
    children of many parents still fill each request); a write that must read first (a parent
    delete) is a request of its own."""
    chunks: list[list[ConditionalWrite]] = []
    open_chunks: list[tuple[list[ConditionalWrite], set[Any], list[int]]] = []  # writes, items, [bytes]
    for w in writes:
        if not w.transactable:
            chunks.append([w])
            continue
        n = item_size(w.item)
        ident = w.item_identity
        for chunk, items, size in open_chunks:
            if ident not in items and len(chunk) < max_items and size[0] + n <= MAX_TRANSACT_BYTES:
                break
        else:
            chunk, items, size = [], set(), [0]
            open_chunks.append((chunk, items, size))
        chunk.append(w)
        items.add(ident)
        size[0] += n
    return chunks + [chunk for chunk, _, _ in open_chunks]


class ConditionalApplier:
    """Applies distinct conditional writes concurrently; see the module docstring."""

    def __init__(self, client: DynamoClient, *, mode: ApplyMode = DEFAULT_APPLY_MODE, concurrency: int = 8,
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
        with self._lock:
            self.pending += len(writes)
        results: list[WriteResult] = []
        # Items first, then embedded children's entries: a parent created in this batch has its
        # child maps by the time its children's entries are set (else each entry would fail its
        # fast path and read the item first).
        items = [w for w in writes if w.op != "entry"]
        entries = combine_entries([w for w in writes if w.op == "entry"])
        for group in (items, entries):
            for chunk_results in self._pool.map(self._apply_chunk, chunk_writes(group, size)):
                results.extend(chunk_results)
        return self._expand(results)

    def _expand(self, results: list[WriteResult]) -> list[WriteResult]:
        """One result per write handed in: a combined entries write that went through stands for
        each of its parts; one that did not is sent again part by part, which tells each one's fate."""
        out: list[WriteResult] = []
        for r in results:
            if r.write.op != "entries":
                out.append(r)
            elif r.outcome == "applied":
                out.extend(WriteResult(p, "applied") for p in r.write.parts)
            else:
                for part in r.write.parts:
                    out.extend(self._send([part]))
        return out

    # ----------------------------------------------------------------- one request

    def _apply_chunk(self, chunk: list[ConditionalWrite]) -> list[WriteResult]:
        started = time.monotonic()
        try:
            return self._send(chunk)
        finally:
            with self._lock:
                self.pending -= sum(len(w.parts) or 1 for w in chunk)
            self._on_chunk(time.monotonic() - started)

    def _send(self, chunk: list[ConditionalWrite]) -> list[WriteResult]:
        results: list[WriteResult] = []
        pending = chunk
        attempt = 0
        while pending:
            try:
                with dynamo_errors("applying changes", pending[0].table):
                    if len(pending) == 1:
                        results.append(self._put(pending[0]))
                        pending = []
                    else:
                        pending, retry = self._transact(pending, results)
                        if retry:
                            attempt = self._wait(attempt, "TransactionCanceled")
            except TargetUnavailable as exc:
                attempt = self._wait(attempt, exc.code or "unavailable")
            except TargetRejected as exc:
                if len(pending) > 1:
                    # Which item is invalid? Send them one by one (the single-put path tells).
                    for w in pending:
                        results.extend(self._send([w]))
                else:
                    results.append(WriteResult(pending[0], "rejected", f"{exc.code}: {exc}"))
                pending = []
        return results

    def _put(self, w: ConditionalWrite) -> WriteResult:
        if w.op == "parent_delete":
            return self._read_write(w)
        method, params = w.request()
        try:
            with dynamo_errors("applying a change", w.table):
                getattr(self.client, method)(**params)
        except ConditionFailed:
            return self._read_write(w) if w.op == "entry" else WriteResult(w, "replayed")
        return WriteResult(w, "applied")

    def _read_write(self, w: ConditionalWrite) -> WriteResult:
        """An embedded child's entry whose fast path failed, or a parent delete: read the item,
        decide from what is stored, write conditional on it; again when another write of the
        item came in between (:mod:`replicator.mapping.embedded`)."""
        for _ in range(MAX_READ_WRITE_ATTEMPTS):
            with dynamo_errors("reading an item", w.table):
                stored = self.client.get_item(TableName=w.table, Key=w.key, ConsistentRead=True).get("Item")
            if w.op == "parent_delete":
                decided = parent_delete(stored, w.table, w.key, w.item, w.version, w.children, time.time())
                step = None if isinstance(decided, str) else ("put_item", decided)
            else:
                assert w.entry is not None
                decided = resolve_entry(stored, w.table, w.key, w.entry, w.version, w.parent_source)
                step = None if isinstance(decided, str) else (
                    "put_item" if decided["op"] == "put" else "update_item", decided["params"])
            if step is None:
                return WriteResult(w, "replayed")
            try:
                with dynamo_errors("applying a change", w.table):
                    getattr(self.client, step[0])(**step[1])
            except ConditionFailed:
                continue
            return WriteResult(w, "applied")
        raise TargetUnavailable(f"item {w.key} of {w.table} kept changing under a read-then-write",
                                code="ItemContention")

    def _transact(self, pending: list[ConditionalWrite],
                  results: list[WriteResult]) -> tuple[list[ConditionalWrite], bool]:
        """One transaction; returns (writes still to send, whether to back off first)."""
        try:
            with dynamo_errors("applying changes", pending[0].table):
                self.client.transact_write_items(TransactItems=[w.transact_item() for w in pending])
        except TransactionCancelled as exc:
            if len(exc.reasons) != len(pending):
                return pending, True
            again: list[ConditionalWrite] = []
            singles: list[ConditionalWrite] = []
            retry = False
            for w, code, message in zip(pending, exc.reasons, exc.messages, strict=True):
                if code == "ConditionalCheckFailed" and w.op == "entry":
                    singles.append(w)  # not necessarily a replay: read the item to tell
                elif code == "ConditionalCheckFailed":
                    results.append(WriteResult(w, "replayed"))
                elif code == "ValidationError":
                    results.append(WriteResult(w, "rejected", f"{code}: {message}"))
                else:
                    again.append(w)
                    retry = retry or code != "None"
            for w in singles:
                results.extend(self._send([w]))
            return again, retry
        results.extend(WriteResult(w, "applied") for w in pending)
        return [], False

    def _wait(self, attempt: int, reason: str) -> int:
        self._on_retry(reason)
        delay = self.backoff.delay(attempt)
        if attempt in (0, 4) or attempt % 20 == 19:
            log.warning("dynamodb_write_retry", marker="DualWrite", outcome="retry", error=reason,
                        attempt=attempt + 1, delay_s=round(delay, 3))
        self._sleep(delay)
        return attempt + 1

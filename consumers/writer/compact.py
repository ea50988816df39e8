"""``replicator compact``: remove the expired tombstone entries of embedded children.

A deleted child row leaves a tombstone entry in its parent's item (docs/model.md) so that no
older change of it (a backfill chunk read before the delete, a replayed event) can bring it
back. Item tombstones leave with DynamoDB's TTL after ``dynamodb.tombstone_ttl_s``; an entry is
part of an item, which TTL cannot trim, so without this job a parent whose children come and go
(a cart) would grow by one tombstone per deleted child until it reached DynamoDB's 400 KB item
limit and was dead-lettered. Each tombstone entry carries its ``_ttl``; this job scans the
target tables that hold embedded children (parallel segments), and removes each expired tombstone
entry with an UpdateItem conditional on that entry still being the tombstone read (a child
written again in the meantime keeps its entry) — the same guarantee, for the same time, as item
tombstones give. It writes nothing else: live entries, parents and their versions stay; the
reverse replication reads such a record as no row change.

Safe to run at any time and in any phase, as often as wanted (cron: the Helm chart's
``compact`` CronJob): a run that stops half-way has removed only expired tombstones.
Tombstones written before entries carried ``_ttl`` never expire (they are left as they are).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import structlog

from replicator.adapters.dynamodb import dynamo_errors
from replicator.backoff import Backoff
from replicator.errors import ConditionFailed, TargetUnavailable
from replicator.mapping.conditional import owned_by
from replicator.mapping.embedded import MAX_COMPACTED_ENTRIES, compact_entries, expired_entries
from replicator.settings import Settings, TableMapping

log = structlog.get_logger("consumers.writer.compact")

#: A throttled or unavailable DynamoDB is waited out this long per request before the run fails.
RETRY_BUDGET_S = 60.0


@dataclass
class CompactReport:
    """One parent table's run."""

    source: str  # the parent mapping (database.table)
    table: str  # its DynamoDB table
    attributes: tuple[str, ...]  # the map attributes of its embedded children
    items_scanned: int = 0
    items_compacted: int = 0  # items with at least one expired tombstone entry (removed, or not: dry run)
    entries_expired: int = 0
    entries_removed: int = 0
    entries_rewritten: int = 0  # written again since the scan: kept
    dry_run: bool = False
    complete: bool = True  # False: stopped (SIGTERM/SIGINT) before the scan's end
    seconds: float = 0.0

    def to_doc(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass
class _Pace:
    """At most ``per_s`` requests a second over all segments (0: no cap)."""

    per_s: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], object] = time.sleep
    _next: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> None:
        if self.per_s <= 0:
            return
        with self._lock:
            now = self.clock()
            at = max(self._next, now)
            self._next = at + 1.0 / self.per_s
        if at > now:
            self.sleep(at - now)


def parents_with_children(settings: Settings, only: list[str] | None = None) -> list[TableMapping]:
    """The mappings whose items hold embedded children (``only``: those sources among them)."""
    parents = [t for t in settings.tables if t.children_as]
    if only:
        parents = [t for t in parents if t.source in only]
    return parents


def compact_table(client: Any, settings: Settings, parent: TableMapping, *, dry_run: bool = False,
                  segments: int = 4, max_writes_per_s: float = 100.0, now: float | None = None,
                  stop: threading.Event | None = None) -> CompactReport:
    """Remove ``parent``'s items' expired tombstone entries (see the module docstring)."""
    started = time.monotonic()
    at = time.time() if now is None else now
    table = settings.dynamodb.table_prefix + parent.target_name
    attributes = tuple(parent.children_as)
    report = CompactReport(parent.source, table, attributes, dry_run=dry_run)
    lock = threading.Lock()
    pace = _Pace(max_writes_per_s)
    stop = stop or threading.Event()
    names = {f"#m{i}": a for i, a in enumerate(attributes)}
    scan_filter = " OR ".join(f"attribute_exists({n})" for n in names)

    def one_item(item: dict[str, Any], key: dict[str, Any]) -> tuple[int, int, int]:
        expired_n = removed = rewritten = 0
        for attribute in attributes:
            expired = expired_entries(item, attribute, at)
            expired_n += len(expired)
            if dry_run:
                continue
            listed = sorted(expired.items())
            for start in range(0, len(listed), MAX_COMPACTED_ENTRIES):
                part = dict(listed[start:start + MAX_COMPACTED_ENTRIES])
                if _remove(client, table, compact_entries(table, key, attribute, part), pace, stop):
                    removed += len(part)
                    continue
                for name, version in part.items():  # one was written again: which? one by one
                    if _remove(client, table, compact_entries(table, key, attribute, {name: version}), pace,
                               stop):
                        removed += 1
                    else:
                        rewritten += 1
        return expired_n, removed, rewritten

    key_names = _key_names(client, table)

    def segment(n: int) -> None:
        kwargs: dict[str, Any] = {"TableName": table, "Segment": n, "TotalSegments": segments,
                                  "FilterExpression": scan_filter, "ExpressionAttributeNames": names}
        while not stop.is_set():
            page = _retrying(lambda: client.scan(**kwargs), f"scanning {table}", table, stop)
            for item in page.get("Items", []):
                if stop.is_set():
                    return
                if not owned_by(item, parent.source):
                    continue
                counts = one_item(item, {k: item[k] for k in key_names})
                with lock:
                    report.items_scanned += 1
                    report.items_compacted += bool(counts[0])
                    report.entries_expired += counts[0]
                    report.entries_removed += counts[1]
                    report.entries_rewritten += counts[2]
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    with ThreadPoolExecutor(segments) as pool:
        list(pool.map(segment, range(segments)))  # re-raises a segment's error
    report.complete = not stop.is_set()
    report.seconds = round(time.monotonic() - started, 3)
    log.info("compact_table_done", **{k: v for k, v in report.to_doc().items() if k != "attributes"})
    return report


def _key_names(client: Any, table: str) -> list[str]:
    """The table's key attribute names, as DynamoDB has them."""
    with dynamo_errors("describing the table", table):
        schema = client.describe_table(TableName=table)["Table"]["KeySchema"]
    return [k["AttributeName"] for k in schema]


def _remove(client: Any, table: str, params: dict[str, Any], pace: _Pace, stop: threading.Event) -> bool:
    """One compaction request: True when removed, False when an entry was written again since."""
    pace.take()
    try:
        _retrying(lambda: client.update_item(**params), "removing expired tombstone entries", table, stop)
    except ConditionFailed:
        return False
    return True


def _retrying(call: Callable[[], dict[str, Any]], what: str, table: str,
              stop: threading.Event) -> dict[str, Any]:
    """``call`` with backoff while DynamoDB throttles or is unreachable, for at most RETRY_BUDGET_S."""
    backoff = Backoff(base_s=0.05, cap_s=2.0)
    deadline = time.monotonic() + RETRY_BUDGET_S
    while True:
        try:
            with dynamo_errors(what, table):
                return call()
        except TargetUnavailable as exc:
            if time.monotonic() > deadline or stop.is_set():
                raise
            log.warning("compact_retry", table=table, error=str(exc))
            stop.wait(backoff.next())

"""Lag-aware comparison of changed keys: MySQL's current row against DynamoDB's item.

A key taken from the stream is compared only once the writer has applied its change, and a
difference is reported only once it cannot be replication lag. Each key goes through:

1. **applied?** The item's ``_version`` is at or past the event's version, or the writers'
   applied offsets (the watermark markers) are past the event's offset (the evidence for a key
   whose item is missing). Not yet: asked again every ``poll_s`` until ``recheck_wait_s`` after
   the key was taken; then the key is **unverified** (lag), never failed.
2. **compare.** MySQL's row is read in a consistent snapshot at binlog version ``H`` (after the
   item was read, so the item is never newer than the row). Equal: **passed**.
3. **settle.** A difference may be a change the row had after the event, still in flight: wait
   until the pipeline has applied everything before ``H`` (:class:`WatermarkSnapshot`) on every
   topic that can write the row's item (``topics``: not only the row's own table's — a parent's
   delete removes its embedded children and reproduces ``ON DELETE CASCADE`` from the parent's
   topic), bounded by ``recheck_wait_s`` (else unverified), then read the item again. If its version's binlog
   base is below ``H``'s, the item is the result of the row's last change before ``H``, so it
   must equal the row read at ``H``: equal is **passed**, different is **failed**. If the item is
   newer than ``H`` the row moved on: read MySQL again and go back to 2, at most ``attempts``
   times (then unverified: a row that changes faster than it can be compared is not a failure).

Pure with respect to the outside world: the stores and the watermark are injected
(:class:`KeyStores`), so every path runs in unit tests on fakes with a manual clock.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import structlog

from replicator.control.watermark import WatermarkSnapshot
from replicator.diff import Mismatch, compare
from replicator.errors import ControlStoreUnavailable
from replicator.events import Row, split_version

log = structlog.get_logger("validators.stream")

Outcome = Literal["passed", "failed", "unverified"]
Stage = Literal["applied", "settle"]


@dataclass(frozen=True)
class StoredItem:
    """What DynamoDB holds for a key: the row its item maps back to (None: no item, or a
    tombstone) and the item's ``_version`` (None: no item at all)."""

    row: Row | None
    version: int | None


class KeyStores(Protocol):
    """Reads of both stores for a batch of keys of one mapped table (``source``)."""

    def key_text(self, source: str, image: Row) -> str:
        """The key's text (the mapper's ``key_text``), the same for both stores' rows."""
        ...

    def key_columns(self, source: str) -> tuple[str, ...]:
        """The columns the DynamoDB key is built from (a difference there is a key transform)."""
        ...

    def mysql(self, source: str, images: Sequence[Row]) -> tuple[dict[str, Row], dict[str, int]]:
        """The current rows of ``images``' keys that exist (mapped columns, by key text), and per
        key text of every image the binlog version of the consistent snapshot it was read in."""
        ...

    def dynamodb(self, source: str, images: Sequence[Row]) -> dict[str, StoredItem]:
        """Per key text of ``images``: the item, consistently read (absent keys may be left out)."""
        ...


@dataclass
class Check:
    """One changed key to compare: the newest event of it in the batch, and where it stands."""

    source: str
    key: str
    image: Row  # the event's row image: it keys the item (templates may use any column)
    version: int  # the event's version
    topic: str
    partition: int
    offset: int
    taken_at: float
    stage: Stage = "applied"
    deadline: float = 0.0
    seen: Row | None = None  # settle: the MySQL row read at `position`
    position: int = 0  # settle: the binlog version of that read
    attempts: int = 0
    read_at: float = float("-inf")  # when DynamoDB was last read for it (step 1)


@dataclass(frozen=True)
class Verdict:
    check: Check
    outcome: Outcome
    reason: str  # passed: "equal"; failed: the mismatch kind; unverified: "lag" | "changing" | "error"
    mismatch: Mismatch | None = None
    mysql: Row | None = None
    dynamodb: Row | None = None
    waited_s: float = 0.0


@dataclass
class CheckerOptions:
    recheck_wait_s: float = 5.0
    poll_s: float = 0.1
    attempts: int = 3
    reread_s: float = 1.0  # step 1 without the writers' offsets: DynamoDB at most this often per key


def _base(version: int) -> int:
    return split_version(version)[1]


@dataclass
class _Round:
    verdicts: list[Verdict] = field(default_factory=list)
    waiting: list[Check] = field(default_factory=list)


class LagAwareChecker:
    """Resolves a batch of checks to verdicts; returns once every check has one."""

    def __init__(self, stores: KeyStores, watermark: Callable[[], WatermarkSnapshot],
                 options: CheckerOptions | None = None, *, clock: Callable[[], float],
                 sleep: Callable[[float], object], stop: threading.Event | None = None,
                 topics: Sequence[str] = ()) -> None:
        """``topics``: the table topics the settle step waits for (every mapped table's; empty:
        each check's own topic only)."""
        self.stores = stores
        self.topics = tuple(topics)
        self.watermark = watermark
        self.options = options or CheckerOptions()
        self.clock = clock
        self.sleep = sleep
        self.stop = stop or threading.Event()
        self.rechecks = 0  # rounds that had to wait (for the metrics)

    def resolve(self, checks: Sequence[Check]) -> list[Verdict]:
        for c in checks:
            c.stage, c.deadline = "applied", c.taken_at + self.options.recheck_wait_s
        waiting = list(checks)
        verdicts: list[Verdict] = []
        while waiting:
            r = self._round(waiting)
            verdicts += r.verdicts
            waiting = r.waiting
            if not waiting:
                break
            if self.stop.is_set():  # shutting down: what is left is not judged, its offsets not committed
                break
            self.rechecks += 1
            self.sleep(self.options.poll_s)
        return verdicts

    # ----------------------------------------------------------------- one round

    def _snapshot(self) -> WatermarkSnapshot | None:
        try:
            return self.watermark()
        except ControlStoreUnavailable as exc:
            log.warning("watermark_unreadable", error=str(exc))
            return None

    def _round(self, checks: list[Check]) -> _Round:
        out = _Round()
        now = self.clock()
        snap = self._snapshot()
        by_source: dict[str, list[Check]] = defaultdict(list)
        for c in checks:
            by_source[c.source].append(c)
        for source, group in by_source.items():
            applying = [c for c in group if c.stage == "applied"]
            settling = [c for c in group if c.stage == "settle"]
            ready = []
            for c in settling:
                if snap is not None and snap.applied_through(self.topics or [c.topic], version=c.position):
                    ready.append(c)
                elif now >= c.deadline:
                    out.verdicts.append(self._verdict(c, "unverified", "lag", now))
                else:
                    out.waiting.append(c)
            self._applying(source, applying, snap, now, out)
            self._settled(source, ready, now, out)
        return out

    def _applying(self, source: str, group: list[Check], snap: WatermarkSnapshot | None, now: float,
                  out: _Round) -> None:
        """Step 1. DynamoDB is read only for keys that may be applied: the writers' offsets are past
        the event, or say nothing of its partition (then at most every ``reread_s``), or the wait
        is over. Waiting on the offsets costs one control-store read per round, not one item
        read per key per round."""
        if not group:
            return
        due: list[Check] = []
        for c in group:
            writer = snap.applied.get((c.topic, c.partition)) if snap is not None else None
            if (writer is not None and writer > c.offset) or now >= c.deadline or (
                    writer is None and now - c.read_at >= self.options.reread_s):
                due.append(c)
            else:
                out.waiting.append(c)
        if not due:
            return
        items = self.stores.dynamodb(source, [c.image for c in due])
        applied: list[Check] = []
        for c in due:
            c.read_at = now
            item = items.get(c.key, StoredItem(None, None))
            done = (item.version is not None and item.version >= c.version) or (
                snap is not None and snap.applied.get((c.topic, c.partition), -1) > c.offset)
            if done:
                applied.append(c)
            elif now >= c.deadline:
                out.verdicts.append(self._verdict(c, "unverified", "lag", now))
            else:
                out.waiting.append(c)
        if applied:
            self._compare(source, applied, items, now, out)

    def _compare(self, source: str, group: list[Check], items: dict[str, StoredItem], now: float,
                 out: _Round) -> None:
        """Step 2: the items were read before the rows, so an item is never newer than its row."""
        rows, positions = self.stores.mysql(source, [c.image for c in group])
        key_columns = self.stores.key_columns(source)
        for c in group:
            mysql, dynamo = rows.get(c.key), items.get(c.key, StoredItem(None, None)).row
            mismatch = compare(source, c.key, mysql, dynamo, key_columns)
            if mismatch is None:
                out.verdicts.append(self._verdict(c, "passed", "equal", now, mysql=mysql, dynamo=dynamo))
                continue
            c.attempts += 1
            if c.attempts > self.options.attempts:
                out.verdicts.append(self._verdict(c, "unverified", "changing", now))
                continue
            c.stage, c.seen, c.position = "settle", mysql, positions[c.key]
            c.deadline = now + self.options.recheck_wait_s
            out.waiting.append(c)

    def _settled(self, source: str, group: list[Check], now: float, out: _Round) -> None:
        """Step 3: everything before each check's position is applied; read the items again."""
        if not group:
            return
        # The item of the row as MySQL had it: when a key template reads a column that changed
        # after the event (an order moved to another user), the row's item is at its new key.
        items = self.stores.dynamodb(source, [c.seen if c.seen is not None else c.image for c in group])
        key_columns = self.stores.key_columns(source)
        moved: list[Check] = []
        for c in group:
            item = items.get(c.key, StoredItem(None, None))
            if item.version is not None and _base(item.version) >= _base(c.position):
                moved.append(c)  # a change after the row was read is applied: read the row again
                continue
            mismatch = compare(source, c.key, c.seen, item.row, key_columns)
            if mismatch is None:
                out.verdicts.append(self._verdict(c, "passed", "equal", now, mysql=c.seen, dynamo=item.row))
            else:
                out.verdicts.append(self._verdict(c, "failed", mismatch.kind, now, mismatch=mismatch,
                                                  mysql=c.seen, dynamo=item.row))
        if moved:
            self._compare(source, moved, items, now, out)

    @staticmethod
    def _verdict(c: Check, outcome: Outcome, reason: str, now: float, *, mismatch: Mismatch | None = None,
                 mysql: Row | None = None, dynamo: Row | None = None) -> Verdict:
        return Verdict(c, outcome, reason, mismatch, mysql, dynamo, max(0.0, now - c.taken_at))

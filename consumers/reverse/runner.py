"""The reverse loop: read each readable shard's next page, apply it to MySQL, then checkpoint.

Order of acknowledgements for one page of one shard:
  1. its changes committed in MySQL (one transaction; a change refused for a reason another
     shard may resolve is tried again, the shard held back meanwhile, until ``retry_s``),
  2. its dead letters and cleared dead letters written to the control store,
  3. then, and only then, the shard's checkpoint moves past the page.
A crash anywhere before 3 re-reads the page, which upserts and deletes by primary key make
harmless. A shard is read only while it has no page in flight, and one item's records are in
one shard (or its parent before it): one row's changes are applied in stream order.

Rounds: one round visits every readable shard of every table once. A round in which every
open shard was at its end, with nothing in flight and every checkpoint saved, is *caught up*
(:mod:`.progress`); the heartbeat is published then and at least every ``heartbeat_s``.

A phase-5 write read when the writes have gone back to MySQL (the phase document is below
5 at a newer generation than the write's) is not applied: it could overwrite a newer MySQL
change (DESIGN §4 invariant 7). The switch drains the stream before it flips, so only a lost
checkpoint or a forced rollback gets here; such a write becomes a dead letter
(``stale_after_switch``), so it is neither applied nor dropped unseen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog

from consumers.reverse.deadletters import DeadLetters
from consumers.reverse.metrics import ReverseMetrics
from consumers.reverse.model import SUPERSEDED, Change, Rejected
from consumers.reverse.pages import Fetched, Page, ShardState, TableStream, coalesce
from consumers.reverse.ports import RowSink, StreamSource
from consumers.reverse.progress import Progress
from consumers.reverse.records import Target, generation_of, translate_all
from consumers.reverse.shards import Checkpoint, readable
from replicator.adapters.dynamodb import EXPIRED_ITERATOR, TRIMMED_DATA
from replicator.backoff import Backoff
from replicator.control import ControlStore, PhaseState, names
from replicator.errors import (
    ControlStoreUnavailable,
    FatalDataError,
    SourceUnavailable,
    StatementRejected,
    TargetRejected,
    TargetUnavailable,
    TransientError,
)
from replicator.metrics import Health

log = structlog.get_logger("consumers.reverse")


#: At most one reading of the tables' shapes again per this many seconds (an attribute that has no
#: column for good must not cost a reload per page).
RELOAD_EVERY_S = 10.0


@dataclass(frozen=True)
class ReverseOptions:
    page_size: int = 1000  # GetRecords limit (DynamoDB's maximum)
    poll_interval_s: float = 0.25  # wait between rounds that found nothing new
    shard_refresh_s: float = 10.0  # DescribeStream at least this often (new and closed shards)
    retry_s: float = 10.0  # how long a change MySQL refuses as a duplicate/foreign key is retried
    settle_s: float = 0.5  # see consumers.reverse.progress
    heartbeat_s: float = 0.5
    phase_refresh_s: float = 1.0
    prune_every_s: float = 3600.0  # delete old row versions (cutover.reverse_versions_retention_s)
    versions_retention_s: float = 172_800.0


class ReverseReplicator:
    """DynamoDB Streams -> MySQL; adapters injected (see :func:`consumers.reverse.service.run_reverse`)."""

    def __init__(self, targets: Iterable[Target], source: StreamSource, sink: RowSink, store: ControlStore,
                 metrics: ReverseMetrics | None = None, options: ReverseOptions | None = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.targets = list(targets)
        self.source = source
        self.sink = sink
        self.store = store
        self.metrics = metrics or ReverseMetrics()
        self.options = options or ReverseOptions()
        self.clock = clock
        self.monotonic = monotonic
        self.stop_event = threading.Event()
        self.health: Health | None = None  # /healthz and /readyz of the metrics port
        self.progress = Progress(settle_s=self.options.settle_s, interval_s=self.options.heartbeat_s,
                                 clock=clock)
        self.dead_letters = DeadLetters(store, self.metrics)
        self.streams: list[TableStream] = []
        #: Reads the MySQL tables' shapes again and returns fresh targets (a column added after
        #: start-up); None: the targets never change.
        self.reload: Callable[[], list[Target]] | None = None
        self._reloaded_at = float("-inf")
        self._phase: PhaseState | None = None
        self._phase_at = float("-inf")
        self._backoff = Backoff(base_s=0.1, cap_s=2.0)
        # A minute after start-up (a crash loop stays light), then every prune_every_s.
        self._prune_at = monotonic() + min(60.0, self.options.prune_every_s)
        self._prune = True
        self._fetcher = ThreadPoolExecutor(max_workers=4, thread_name_prefix="reverse-prefetch")

    # ----------------------------------------------------------------- start-up

    def start(self) -> None:
        """Check every table's stream (exit 2 naming one without), load checkpoints and dead letters."""
        self.dead_letters.load()
        for target in self.targets:
            arn = self.source.stream_arn(target.name)
            doc = self.store.get_marker(names.reverse_checkpoint_marker(target.name))
            cp = Checkpoint.from_doc(target.name, doc) if doc else Checkpoint(target.name, arn)
            if cp.stream_arn != arn:
                log.warning("reverse_stream_replaced", table=target.name, old=cp.stream_arn, new=arn,
                            unfinished=[s for s in cp.positions if s not in cp.finished])
                cp = Checkpoint(target.name, arn)
            self.streams.append(TableStream(target, cp, dirty=doc is None))
        log.info("reverse_started", tables=[t.name for t in self.targets],
                 sources=[r.source for t in self.targets for r in t.routes],
                 deadletters=self.dead_letters.count)

    def close(self) -> None:
        """Stop the page prefetches (their records are read again from the checkpoints)."""
        self._fetcher.shutdown(wait=False, cancel_futures=True)

    # ----------------------------------------------------------------- loop

    def run(self) -> None:
        backoff = Backoff(base_s=0.1, cap_s=5.0)
        while not self.stop_event.is_set():
            if self.health is not None:
                self.health.beat()
            try:
                worked = self.step()
                backoff.reset()
                if self.health is not None:
                    self.health.set_ready(True)
            except TransientError as exc:
                if self.health is not None:
                    self.health.set_ready(False, f"{type(exc).__name__}: {exc}")
                self.metrics.retries.labels(type(exc).__name__).inc()
                log.warning("reverse_round_failed", error=type(exc).__name__, message=str(exc))
                self.progress.caught_up = False
                self._publish(error=f"{type(exc).__name__}: {exc}")  # alive, and why it is not moving
                self.stop_event.wait(backoff.next())
                continue
            self.prune_versions()
            if not worked:
                self.stop_event.wait(self.options.poll_interval_s)
        log.info("reverse_stopped", applied=self.progress.applied_total, deadletters=self.dead_letters.count)

    def prune_versions(self) -> None:
        """Every ``prune_every_s``: delete the row versions older than the stream could still
        carry a record of (:meth:`~consumers.reverse.sink.MySQLSink.prune_versions`). A MySQL
        user without DELETE on the versions table turns it off, said once; an unreachable MySQL
        waits for the next time."""
        if not self._prune or self.monotonic() < self._prune_at:
            return
        self._prune_at = self.monotonic() + self.options.prune_every_s
        try:
            n = self.sink.prune_versions(self.options.versions_retention_s)
        except StatementRejected as exc:
            self._prune = False
            log.warning("reverse_versions_not_pruned", error=str(exc),
                        hint="grant the reverse's MySQL user (client.mysql_user) DELETE on "
                             "cutover.reverse_versions_table; until then it only grows")
            return
        except TransientError as exc:
            log.warning("reverse_versions_prune_failed", error=str(exc),
                        retry_in_s=self.options.prune_every_s)
            return
        self.metrics.versions_pruned.inc(n)
        if n:
            log.info("reverse_versions_pruned", rows=n, older_than_s=self.options.versions_retention_s)

    def step(self) -> bool:
        """One round over every readable shard; True when it read or applied anything."""
        self._refresh_phase()
        worked, caught, behind = False, True, 0
        seen_at = self.clock()  # every record written before this was read, when the round is caught up
        for ts in self.streams:
            if self.monotonic() >= ts.refresh_at:
                self._refresh_shards(ts)
            for shard in readable(ts.listed, ts.checkpoint.finished):
                state = ts.shards.setdefault(shard.id, ShardState(shard))
                if state.page is None and not state.closed:
                    worked |= self._read(ts, state)
                if state.page is not None and self.monotonic() >= state.page.next_try:
                    worked |= self._settle(ts, state)
                if state.page is not None:
                    behind += len(state.page.changes) + len(state.page.letters)
                if state.page is not None or not state.at_end or state.closed:
                    caught = False
                seen_at = min(seen_at, state.read_at)
                if state.last_count >= self.options.page_size:
                    behind += self.options.page_size
            if ts.dirty:
                self._save(ts)
            caught = caught and not ts.dirty
        self.progress.round_done(seen_at, caught, behind)
        self._publish()
        return worked

    # ----------------------------------------------------------------- shards

    def _refresh_shards(self, ts: TableStream) -> None:
        listed = self.source.shards(ts.name, ts.checkpoint.stream_arn)
        ids = [s.id for s in listed]
        lost = ts.checkpoint.lost(ids)
        if lost:
            raise FatalDataError(
                f"DynamoDB table {ts.name!r}: the stream trimmed shard(s) {lost} before reverse replication "
                f"read them to their end (DynamoDB Streams keeps records 24 h): phase-5 writes after the "
                f"checkpoint are missing from MySQL. Do not roll back to phase 4 on this state: compare the "
                f"tables (`replicator reconcile`) and repair MySQL from DynamoDB, then delete the marker "
                f"{names.reverse_checkpoint_marker(ts.name)} and start `replicator reverse` again")
        before = len(ts.checkpoint.finished)
        ts.checkpoint.prune(ids)
        ts.dirty |= len(ts.checkpoint.finished) != before
        ts.listed = listed
        for gone in [s for s in ts.shards if s not in ids]:
            del ts.shards[gone]
        ts.refresh_at = self.monotonic() + self.options.shard_refresh_s

    def _open(self, ts: TableStream, state: ShardState) -> str:
        after = ts.checkpoint.position(state.shard.id)
        try:
            return self.source.iterator(ts.name, ts.checkpoint.stream_arn, state.shard.id, after)
        except TargetRejected as exc:
            if exc.code == TRIMMED_DATA:
                raise self._trimmed(ts, state.shard.id, after) from exc
            raise

    def _trimmed(self, ts: TableStream, shard: str, after: str | None) -> FatalDataError:
        return FatalDataError(
            f"DynamoDB table {ts.name!r}, shard {shard}: the records after the reverse replication's "
            f"checkpoint (sequence {after}) were trimmed from the stream (it keeps 24 h) before they were "
            f"applied to MySQL: those phase-5 writes are lost to MySQL. Do not roll back to phase 4 on this "
            f"state: compare the tables (`replicator reconcile`) and repair MySQL from DynamoDB, then delete "
            f"the marker {names.reverse_checkpoint_marker(ts.name)} and start `replicator reverse` again")

    def _read(self, ts: TableStream, state: ShardState) -> bool:
        shard = state.shard.id
        try:
            records, nxt = self._fetch(ts, state)
        except TargetUnavailable as exc:
            if exc.code != EXPIRED_ITERATOR:
                raise
            self.metrics.retries.labels("iterator_expired").inc()
            log.info("reverse_iterator_expired", table=ts.name, shard=shard)
            state.iterator, state.at_end = None, False  # open again from the checkpoint next round
            return False
        except TargetRejected as exc:
            if exc.code != TRIMMED_DATA:
                raise
            after = ts.checkpoint.position(shard)
            if after is not None:
                raise self._trimmed(ts, shard, after) from exc
            # a TRIM_HORIZON iterator that aged past the horizon: open a new one
            state.iterator, state.at_end = None, False
            return False
        state.iterator = nxt
        state.last_count = len(records)
        state.at_end = not records and nxt is not None
        state.closed = nxt is None
        if records and nxt is not None:  # read the next page while this one is applied
            state.prefetch_at = self.clock()
            state.prefetch = self._fetcher.submit(self.source.records, ts.name, nxt, self.options.page_size)
        if records:
            self.metrics.read.labels(ts.name).inc(len(records))
            try:
                state.page = self._page(ts, records)
            except SourceUnavailable:  # MySQL lost while reading the shapes again: nothing applied,
                state.prefetch = None  # so read the page again from the checkpoint next round
                state.iterator, state.at_end, state.closed = None, False, False
                raise
        elif state.closed:
            self._finish(ts, state)
        return bool(records)

    def _fetch(self, ts: TableStream, state: ShardState) -> Fetched:
        """The shard's next page: the one prefetched, else read now."""
        if state.prefetch is not None:
            future, state.prefetch = state.prefetch, None
            state.read_at = state.prefetch_at
            return future.result()
        if state.iterator is None:
            state.iterator = self._open(ts, state)
        state.read_at = self.clock()
        return self.source.records(ts.name, state.iterator, self.options.page_size)

    def _finish(self, ts: TableStream, state: ShardState) -> None:
        ts.checkpoint.finish(state.shard.id)
        ts.dirty = True
        ts.refresh_at = 0.0  # its children, if any, become readable
        log.info("reverse_shard_finished", table=ts.name, shard=state.shard.id)

    # ----------------------------------------------------------------- pages

    def _page(self, ts: TableStream, records: list[dict[str, Any]]) -> Page:
        translated = [x for r in records for x in translate_all(r, ts.target)]
        if (self.reload is not None and self.monotonic() - self._reloaded_at >= RELOAD_EVERY_S
                and any(isinstance(x, Rejected) and x.reason == "attribute_without_column"
                        for x in translated)):
            self._reloaded_at = self.monotonic()
            # A column added to MySQL after start-up (the application, or the pipeline, writes
            # it): read the tables' shapes again once, then judge the page again.
            fresh = {t.name: t for t in self.reload()}
            for stream in self.streams:
                stream.target = fresh.get(stream.name, stream.target)
            log.info("reverse_table_shapes_reloaded", table=ts.name)
            translated = [x for r in records for x in translate_all(r, ts.target)]
        entries, superseded, skipped = coalesce(translated)
        for s in skipped:
            self.metrics.skipped.labels(s.reason).inc()
        self.metrics.coalesced.inc(superseded)
        changes, letters = [], []
        for e in entries:
            if isinstance(e, Rejected):
                letters.append(e)
            elif self._stale(e):
                letters.append(Rejected.of(e, "stale_after_switch", (
                    f"{e.source} key ({e.key_text}): a phase-5 write (generation "
                    f"{generation_of(e.version)}) read after writes went back to MySQL; applying it could "
                    f"overwrite a newer MySQL change: compare the row in both stores and repair it by hand")))
            else:
                changes.append(e)
        last = str((records[-1].get("dynamodb") or {}).get("SequenceNumber", ""))
        return Page(last, changes, letters, first_try=self.monotonic())

    def _stale(self, change: Change) -> bool:
        phase = self._phase
        return phase is not None and phase.phase < 5 and generation_of(change.version) < phase.generation

    def _settle(self, ts: TableStream, state: ShardState) -> bool:
        """Apply what is left of the shard's page; checkpoint it once nothing is."""
        page = state.page
        assert page is not None
        page.attempts += 1
        try:
            self._apply(page)
            if page.changes:  # refused for now: held back, tried again shortly
                page.next_try = self.monotonic() + self._backoff.delay(page.attempts)
                return True
            while page.letters:
                self.dead_letters.add(page.letters[0], state.shard.id, ts.name)
                page.letters.pop(0)
            while page.clears:
                self.dead_letters.clear(*page.clears[0])
                page.clears.pop(0)
        except (SourceUnavailable, ControlStoreUnavailable) as exc:
            self.metrics.retries.labels(type(exc).__name__).inc()
            log.warning("reverse_page_retry", table=ts.name, shard=state.shard.id, error=type(exc).__name__,
                        message=str(exc), attempts=page.attempts)
            page.next_try = self.monotonic() + self._backoff.delay(page.attempts)
            return False
        ts.checkpoint.advance(state.shard.id, page.last_sequence)
        ts.dirty = True
        state.page = None
        if state.closed:
            self._finish(ts, state)
        self._save(ts)
        return True

    def _apply(self, page: Page) -> None:
        if not page.changes:
            return
        started = self.monotonic()
        outcomes = self.sink.apply(page.changes)
        self.metrics.apply_seconds.observe(self.monotonic() - started)
        retry: list[Change] = []
        expired = self.monotonic() - page.first_try >= self.options.retry_s
        for change, outcome in zip(page.changes, outcomes, strict=True):
            if outcome is SUPERSEDED:  # MySQL holds a newer state of the row: its dead letters stand
                self.metrics.superseded.inc()
                self.progress.applied(change.written_at)
            elif outcome.verdict == "applied":
                self.metrics.applied.labels(change.source, change.op).inc()
                self.progress.applied(change.written_at)
                page.clears.append((change.source, change.key_text))
            elif outcome.verdict == "retry" and not expired:
                self.metrics.retries.labels(outcome.reason).inc()
                retry.append(change)
            else:
                more = " (still refused after retries)" if outcome.verdict == "retry" else ""
                page.letters.append(Rejected.of(change, outcome.reason, outcome.message + more))
        page.changes = retry

    # ----------------------------------------------------------------- control store

    def _save(self, ts: TableStream) -> None:
        try:
            doc = ts.checkpoint.to_doc(self.clock())
            self.store.put_marker(names.reverse_checkpoint_marker(ts.name), doc)
            ts.dirty = False
        except ControlStoreUnavailable as exc:
            log.warning("reverse_checkpoint_not_written", table=ts.name, error=str(exc))

    def _refresh_phase(self) -> None:
        if self.monotonic() - self._phase_at < self.options.phase_refresh_s:
            return
        try:
            self._phase = self.store.get_phase()
            self._phase_at = self.monotonic()
        except ControlStoreUnavailable as exc:
            log.warning("phase_state_unavailable_keeping_last", error=str(exc))

    def _publish(self, error: str | None = None) -> None:
        self.metrics.lag.set(self.progress.lag_s())
        self.metrics.behind.set(self.progress.behind)
        if not self.progress.due():
            return
        doc = self.progress.heartbeat(self.dead_letters.count, self.dead_letters.keys(),
                                      tables=[ts.name for ts in self.streams], error=error)
        try:
            self.store.put_marker(names.REVERSE_HEARTBEAT, doc)
        except ControlStoreUnavailable as exc:
            log.warning("reverse_heartbeat_not_written", error=str(exc))

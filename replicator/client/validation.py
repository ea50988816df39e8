"""Phase-3 validated dual reads: compare what MySQL and DynamoDB return, lag-aware.

Every phase-3 read (a sample of them: ``validation.sample_ratio``) compares the MySQL rows
with the DynamoDB rows through the shared row diff (:mod:`replicator.diff`). Equal: one
validation passed. Different: the difference may only be replication lag, so it is not
reported yet; a background worker waits until the pipeline has applied everything up to the
MySQL position the read saw (:class:`~replicator.control.watermark.PipelineWatermark`,
bounded by ``validation.recheck_wait_s``), reads both stores again, and only a difference
that persists on a row that did not change meanwhile is a failure: logged with the guide's
text ``Data validation failed`` and a field-by-field diff (column names and classes at
warning level; values only at debug level, since rows may hold personal data), and counted
into ``validation.failed`` for the 3 -> 4 gate. A recheck that cannot conclude (the pipeline
did not catch up in time, or the row kept changing) is counted as unverified: lag is never a
failure, and never a pass either.
"""

from __future__ import annotations

import contextlib
import queue
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import structlog

from replicator.control import names
from replicator.diff import Mismatch, compare, diff_row
from replicator.errors import ReplicatorError
from replicator.events import Row

log = structlog.get_logger("replicator.client")

RowFetch = Callable[[], tuple[Row | None, Row | None]]  # re-read (mysql, dynamodb) of one key


@dataclass
class _Recheck:
    mismatch: Mismatch
    seen: Row | None  # the MySQL row the first read returned
    fetch: RowFetch
    sources: tuple[str, ...]
    key_columns: tuple[str, ...]


class DualReadValidator:
    """Counts and logs phase-3 comparisons; rechecks differences in the background."""

    def __init__(self, *, sample_ratio: float, recheck_wait_s: float,
                 count: Callable[[str, int], None], on_outcome: Callable[[str], None],
                 on_difference: Callable[[str, str], None],
                 position: Callable[[], str | None],
                 wait_applied: Callable[[Sequence[str], str | None, float], bool],
                 queue_size: int = 1000, rng: random.Random | None = None) -> None:
        self._ratio = sample_ratio
        self._wait_s = recheck_wait_s
        self._count = count
        self._on_outcome = on_outcome
        self._on_difference = on_difference
        self._position = position
        self._wait_applied = wait_applied
        self._rng = rng or random.Random()  # noqa: S311 -- sampling, not cryptography
        self._queue: queue.Queue[_Recheck | None] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()  # the client is closing: what is still queued is not rechecked

    def sampled(self) -> bool:
        return self._ratio >= 1.0 or self._rng.random() < self._ratio

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dual-read-recheck", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout_s)
        self._thread.join(timeout=timeout_s + self._wait_s)
        # The rechecks still queued now are not judged: the client's stores close after this.
        self._closing.set()
        self._thread = None

    # ----------------------------------------------------------------- the read path

    def check(self, table: str, key: str, mysql: Row | None, dynamo: Row | None, *,
              sources: Sequence[str], key_columns: Sequence[str], fetch: RowFetch) -> None:
        """Called by a phase-3 read; never raises, never blocks on the recheck."""
        mismatch = compare(table, key, mysql, dynamo, key_columns)
        if mismatch is None:
            self._outcome("passed")
            return
        try:
            self._queue.put_nowait(_Recheck(mismatch, mysql, fetch, tuple(sources), tuple(key_columns)))
        except queue.Full:
            self._outcome("unverified")

    def _outcome(self, outcome: str) -> None:
        self._on_outcome(outcome)
        if outcome == "passed":
            self._count(names.VALIDATION_PASSED, 1)
        elif outcome == "failed":
            self._count(names.VALIDATION_FAILED, 1)

    # ----------------------------------------------------------------- the recheck worker

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if self._closing.is_set():
                self._outcome("unverified")  # not judged: neither passed nor failed
                continue
            try:
                self._outcome(self._recheck(job))
            except ReplicatorError as exc:
                log.warning("validation_recheck_failed", table=job.mismatch.table, key=job.mismatch.key,
                            error=str(exc))
                self._outcome("unverified")
            except Exception as exc:  # a bug must not end the worker: log it, count the read unverified
                if self._closing.is_set():  # the client closed its stores under this recheck
                    self._outcome("unverified")
                    continue
                log.exception("validation_recheck_crashed", table=job.mismatch.table, key=job.mismatch.key,
                              error=f"{type(exc).__name__}: {exc}")
                self._outcome("unverified")

    def _recheck(self, job: _Recheck, attempts: int = 3) -> str:
        seen = job.seen
        for _ in range(attempts):
            position = self._position()
            if not self._wait_applied(job.sources, position, self._wait_s):
                return "unverified"
            mysql, dynamo = job.fetch()
            mismatch = compare(job.mismatch.table, job.mismatch.key, mysql, dynamo, job.key_columns)
            if mismatch is None:
                return "passed"
            if mysql == seen:
                self._report(mismatch, mysql, dynamo)
                return "failed"
            seen = mysql  # the row changed meanwhile: compare its new state once applied
        return "unverified"

    def _report(self, m: Mismatch, mysql: Row | None, dynamo: Row | None) -> None:
        for kind in m.classes():
            self._on_difference(m.table, kind)
        log.warning("data_validation_failed", marker="Data validation failed", table=m.table, key=m.key,
                    kind=m.kind, fields=m.fields)
        if mysql is not None and dynamo is not None:
            log.debug("data_validation_failed_values", table=m.table, key=m.key,
                      diff={c: {"mysql": repr(a)[:80], "dynamodb": repr(b)[:80]}
                            for c, (a, b) in diff_row(mysql, dynamo).items()})

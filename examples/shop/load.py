"""A load generator for the shop's HTTP API, reporting what the application's users would see.

``python -m examples.shop.load --url http://127.0.0.1:8080 --threads 8 --seconds 30``

Threads send a mix of reads (``GET /users/<id>``, ``GET /users/<id>/orders``: the user's
collection, ``GET /users/<id>/orders/<order>``: an order with its items) and writes. The writes
are the demo workload's operations (:class:`replicator.demo.workload.ShopWorkload`: new users,
visits, orders with their items, deletes, id changes) sent as API calls. Every answer is filed under the
migration phase the service was in (its ``X-Migration-Phase`` / ``X-Migration-Epoch`` headers),
so the report has one row per phase visited, in order: requests, errors and latency p50/p99.

What counts as an error is what a user of the shop would call one: a 5xx, a 400 (the load
only sends well-formed requests), a timeout or a broken connection. A 404 is not: the workload
picks ids at random and some no longer exist (deleted, or moved by an id change); a 409 is a
random order id that happened to exist. Both are counted on their own.

Usable as a library (the demo does): :class:`LoadGenerator` ``start()`` / ``stop()`` /
``report()``, and ``pause_writes()`` / ``resume_writes()`` to let the pipeline drain while
reads go on.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import random
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from examples.shop.server import EPOCH_HEADER, PHASE_HEADER
from replicator.demo.workload import (
    DeleteUser,
    InsertUser,
    Operation,
    PlaceOrder,
    RekeyUser,
    ShopWorkload,
    TouchUser,
)

RESERVOIR = 20_000  # latency samples kept per phase visit (uniformly sampled beyond that)
ERROR_SAMPLES = 5


@dataclass(frozen=True)
class Call:
    kind: str  # "read" | "write"
    method: str
    path: str
    body: dict[str, Any] | None = None


def call_for(op: Operation) -> Call:
    """One workload operation as the shop API call that makes it."""
    match op:
        case InsertUser():
            body: dict[str, Any] = {"id": op.id, "email": op.email, "name": op.name, "password": op.password,
                                    "balance": op.balance,
                                    "profile": json.loads(op.profile) if op.profile else None}
            return Call("write", "POST", "/users", body)
        case TouchUser():
            return Call("write", "PATCH", f"/users/{op.id}", {"profile": {"visits": op.visits}})
        case PlaceOrder():
            items = [{"sku": line.sku, "qty": line.qty, "price": line.price} for line in op.items]
            return Call("write", "POST", "/orders",
                        {"id": op.id, "user_id": op.user_id, "items": items, "note": op.note})
        case DeleteUser():
            return Call("write", "DELETE", f"/users/{op.id}")
        case RekeyUser():
            return Call("write", "PATCH", f"/users/{op.id}", {"id": op.new_id})


def outcome(status: int) -> str:
    """``ok``, ``miss`` (404), ``conflict`` (409) or ``error``."""
    if 200 <= status < 300:
        return "ok"
    if status == 404:
        return "miss"
    if status == 409:
        return "conflict"
    return "error"


def answered_under(resp: http.client.HTTPResponse) -> tuple[int, int] | None:
    """``(epoch, phase)`` from the service's headers, or None when it did not say."""
    epoch, phase = resp.getheader(EPOCH_HEADER, ""), resp.getheader(PHASE_HEADER, "")
    if not (epoch.isdigit() and phase.isdigit()):
        return None
    return int(epoch), int(phase)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when there are none)."""
    if not sorted_values:
        return 0.0
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class PhaseFigures:
    """What the application's users saw during one visit of one phase (one epoch)."""

    phase: int  # 0: before any answer said which
    epoch: int
    requests: int
    reads: int
    writes: int
    changes: int  # writes answered 2xx
    misses: int
    conflicts: int
    errors: int
    p50_ms: float
    p99_ms: float
    error_samples: tuple[str, ...] = ()
    longest_write_ms: float = 0.0  # the longest a write waited for its answer (a switch's pause shows here)


@dataclass
class _Visit:
    phase: int
    epoch: int
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("requests", "reads", "writes", "changes", "miss", "conflict", "error"), 0))
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    longest_write: float = 0.0

    def add(self, call: Call, result: str, seconds: float, rng: random.Random, detail: str) -> None:
        c = self.counts
        c["requests"] += 1
        c[call.kind + "s"] += 1
        if call.kind == "write":
            self.longest_write = max(self.longest_write, seconds)
        if result == "ok" and call.kind == "write":
            c["changes"] += 1
        elif result != "ok":
            c[result] += 1
        if result == "error" and len(self.errors) < ERROR_SAMPLES:
            self.errors.append(f"{call.method} {call.path}: {detail}")
        if len(self.latencies) < RESERVOIR:
            self.latencies.append(seconds)
        else:  # reservoir sampling: every answer has the same chance to be kept
            slot = rng.randrange(c["requests"])
            if slot < RESERVOIR:
                self.latencies[slot] = seconds

    def figures(self) -> PhaseFigures:
        lat = sorted(self.latencies)
        c = self.counts
        return PhaseFigures(self.phase, self.epoch, c["requests"], c["reads"], c["writes"], c["changes"],
                            c["miss"], c["conflict"], c["error"], percentile(lat, 0.5) * 1000,
                            percentile(lat, 0.99) * 1000, tuple(self.errors), self.longest_write * 1000)


@dataclass(frozen=True)
class LoadReport:
    visits: tuple[PhaseFigures, ...]  # in the order the phases were visited (by epoch)

    @property
    def requests(self) -> int:
        return sum(v.requests for v in self.visits)

    @property
    def errors(self) -> int:
        return sum(v.errors for v in self.visits)

    @property
    def changes(self) -> int:
        return sum(v.changes for v in self.visits)

    def last(self, phase: int) -> PhaseFigures | None:
        """The latest visit of ``phase``."""
        return next((v for v in reversed(self.visits) if v.phase == phase), None)

    def format(self) -> str:
        head = (f"{'phase':>5} {'epoch':>5} {'requests':>8} {'reads':>6} {'writes':>6} {'404':>5} "
                f"{'409':>4} {'errors':>6} {'p50 ms':>7} {'p99 ms':>7}")
        lines = [head]
        for v in self.visits:
            lines.append(f"{v.phase or '?':>5} {v.epoch:>5} {v.requests:>8} {v.reads:>6} {v.writes:>6} "
                         f"{v.misses:>5} {v.conflicts:>4} {v.errors:>6} {v.p50_ms:>7.1f} {v.p99_ms:>7.1f}")
            lines += [f"      error: {e}" for e in v.error_samples]
        lines.append(f"total: {self.requests} requests, {self.changes} changes, {self.errors} errors")
        return "\n".join(lines)


# --------------------------------------------------------------------------- the generator


class LoadGenerator:
    """``threads`` workers sending ``rate`` requests/s in all (0: as fast as answers come back)."""

    def __init__(self, url: str, *, threads: int = 8, rate: float = 0.0, read_share: float = 0.6,
                 workload: ShopWorkload | None = None, first_free_id: int = 1001, seed: int | None = None,
                 timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"--url must be http://host:port, got {url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.threads, self.rate, self.read_share, self.timeout_s = threads, rate, read_share, timeout_s
        self._rng = random.Random(seed)  # noqa: S311 - a workload, not cryptography
        self._sampling = random.Random(seed)  # noqa: S311 - latency sampling, under the stats lock
        self._workload = workload or ShopWorkload(self._rng, first_free_id)
        self._cond = threading.Condition()  # guards the generator's choices, pacing and pause
        self._stats = threading.Lock()
        self._visits: dict[tuple[int, int], _Visit] = {}
        self._current = (0, 0)  # (epoch, phase) of the latest answer
        self._paused = False
        self._in_flight = 0
        self._next_at = 0.0
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    # ----------------------------------------------------------------- control

    def start(self) -> None:
        self._stop.clear()
        self._next_at = time.monotonic()
        self._workers = [threading.Thread(target=self._work, name=f"shop-load-{i}", daemon=True)
                         for i in range(self.threads)]
        for w in self._workers:
            w.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for w in self._workers:
            w.join(max(0.0, deadline - time.monotonic()))
        self._workers = []

    def pause_writes(self, timeout_s: float = 30.0) -> bool:
        """Send reads only from now on; True once no write is in flight (within ``timeout_s``)."""
        with self._cond:
            self._paused = True
            return self._cond.wait_for(lambda: self._in_flight == 0, timeout_s)

    def resume_writes(self) -> None:
        with self._cond:
            self._paused = False

    def report(self) -> LoadReport:
        with self._stats:
            visits = [self._visits[k].figures() for k in sorted(self._visits)]
        return LoadReport(tuple(visits))

    # ----------------------------------------------------------------- the workers

    def _work(self) -> None:
        conn = self._connect()
        try:
            while self._pace():
                call = self._next_call()
                try:
                    conn = self._send(conn, call)
                finally:
                    if call.kind == "write":
                        with self._cond:
                            self._in_flight -= 1
                            self._cond.notify_all()
        finally:
            conn.close()

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)

    def _pace(self) -> bool:
        """Wait for this worker's next slot; False once stopped."""
        if self.rate <= 0:
            return not self._stop.is_set()
        with self._cond:
            now = time.monotonic()
            slot = max(now, self._next_at)
            self._next_at = slot + 1 / self.rate
        return not self._stop.wait(max(0.0, slot - now))

    def _next_call(self) -> Call:
        with self._cond:
            rng = self._rng
            if self._paused or rng.random() < self.read_share:
                uid, r = rng.randrange(1, self._workload.next_id), rng.random()
                if r < 0.6:
                    return Call("read", "GET", f"/users/{uid}")
                if r < 0.85:
                    return Call("read", "GET", f"/users/{uid}/orders?limit=20")
                oid, owner = self._workload.order_to_read()
                return Call("read", "GET", f"/users/{owner}/orders/{oid}")
            self._in_flight += 1
            return call_for(self._workload.next_operation())

    def _send(self, conn: http.client.HTTPConnection, call: Call) -> http.client.HTTPConnection:
        body = json.dumps(call.body).encode() if call.body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        t0 = time.perf_counter()
        try:
            conn.request(call.method, call.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            self._record(call, None, "error", time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
            conn.close()
            return self._connect()
        seconds = time.perf_counter() - t0
        result = outcome(resp.status)
        detail = f"{resp.status} {data[:200].decode(errors='replace')}"
        self._record(call, answered_under(resp), result, seconds, detail)
        return conn

    def _record(self, call: Call, where: tuple[int, int] | None, result: str, seconds: float,
                detail: str) -> None:
        with self._stats:
            if where is not None and where > self._current:
                self._current = where
            key = where or self._current
            visit = self._visits.get(key)
            if visit is None:
                visit = self._visits[key] = _Visit(phase=key[1], epoch=key[0])
            visit.add(call, result, seconds, self._sampling, detail)


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m examples.shop.load",
                                description="Mixed reads and writes against the shop's HTTP API, reported "
                                            "per migration phase. Exits 1 when the shop answered an error.")
    p.add_argument("--url", required=True, help="the shop service, e.g. http://127.0.0.1:8080")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--rate", type=float, default=0.0, help="requests/s in all; 0: as fast as it answers")
    p.add_argument("--read-share", type=float, default=0.6, help="share of requests that are reads")
    p.add_argument("--users", type=int, default=1000, help="ids 1..N exist (the schema tool's seed)")
    p.add_argument("--first-id", type=int, help="first id for new users (default: users + 1)")
    p.add_argument("--seed", type=int, help="random seed, for a repeatable run")
    p.add_argument("--every", type=float, default=5.0, help="seconds between progress lines")
    args = p.parse_args(argv)
    try:
        gen = LoadGenerator(args.url, threads=args.threads, rate=args.rate, read_share=args.read_share,
                            first_free_id=args.first_id or args.users + 1, seed=args.seed)
    except ValueError as exc:
        p.error(str(exc))
    gen.start()
    started = time.monotonic()
    try:
        while (left := args.seconds - (time.monotonic() - started)) > 0:
            time.sleep(min(args.every, left))
            r = gen.report()
            now = r.visits[-1] if r.visits else None
            print(f"{time.monotonic() - started:6.1f}s  {r.requests} requests, {r.errors} errors"
                  + (f"; phase {now.phase}: p50 {now.p50_ms:.1f} ms, p99 {now.p99_ms:.1f} ms" if now else ""),
                  flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        gen.stop()
    report = gen.report()
    print(report.format())
    return 1 if report.errors or not report.requests else 0


if __name__ == "__main__":
    sys.exit(main())

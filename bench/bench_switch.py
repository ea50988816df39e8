"""The application's write pause when the write target switches, 4 -> 5 and 5 -> 4.

Same run, same DynamoDB:
- baseline: a bare boto3 loop, 8 threads of conditional ``PutItem`` (the writer's condition:
  absent or an older version) into a scratch table with a stream (as the pipeline's tables
  have: the way back from phase 5 reads it) for a few seconds: the items/s this DynamoDB
  absorbs (also reported without a stream: DynamoDB Local slows down a lot with one);
- the load: 8 application threads writing through :mod:`replicator.client` (an upsert of a
  random row of 2,000), paced to half the baseline's rate, with the real pipeline running as
  processes (``replicator run``, ``replicator write``, ``replicator reverse``);
- the switches: ``BENCH_SWITCH_COUNT`` (10) round trips 4 -> 5 -> 4 through the phase
  controller (the switch protocol of docs/design.md), a settle time between them.

For each switch: the protocol's own pause (freeze to flip, from its audit entry) and what the
application saw, the longest time one of its writes took among those answered from the start
of the switch to a second after it (a write that waited out the freeze). Reported per
direction as p50 and max; target: max < 1 s. Aborted switches (an overrun of
``cutover.max_write_pause_s`` aborts, losing nothing) and application errors are counted and
reported, never retried away in silence.

Run with the stack's environment: ``.venv/bin/python -m bench bench_switch``.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import admin_mysql, remove_run
from replicator.adapters.dynamodb import dynamodb_client
from replicator.adapters.mysql import connect as mysql_connect
from replicator.client import Client, connect
from replicator.control import names, open_control_store
from replicator.demo.processes import Pipeline
from replicator.errors import ReplicatorError, SwitchAborted
from replicator.logs import configure_logging
from replicator.phase import open_phase_controller
from replicator.phase.gates import REPLICATION_LAG
from replicator.settings import LogSettings, load_settings

SWITCHES = int(os.environ.get("BENCH_SWITCH_COUNT", "10"))  # round trips 4 -> 5 -> 4
THREADS = 8
ROWS = 2000
BASELINE_S = 4.0
SETTLE_S = 2.0  # between switches: the load runs in the new phase
LAG_GATE_WAIT_S = 30.0
CALIBRATE_S = 15.0  # the pipeline keeps up with a rate if the lag gate passes within this
DRAIN_WAIT_S = 120.0
MIN_RATE = 20.0
START_DEADLINE_S = 120.0
BUDGET_S = 2 * START_DEADLINE_S + BASELINE_S + SWITCHES * 2 * (SETTLE_S + 6)  # bench/__main__.py's watchdog
DDL = ("CREATE TABLE items (id BIGINT PRIMARY KEY, v INT NOT NULL, note VARCHAR(200) NOT NULL, "
       "updated DATETIME(6) NOT NULL)")


def _pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0


class Writers:
    """``THREADS`` application threads writing through the client at ``rate`` writes/s in all."""

    def __init__(self, client: Client, source: str, rate: float) -> None:
        self.client, self.source, self.rate = client, source, rate
        self.done: list[tuple[float, float]] = []  # (answered at, seconds taken), monotonic
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(THREADS)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self, i: int) -> None:
        rng = random.Random(i)  # a workload's choices
        table = self.client.table(self.source)
        next_at = time.monotonic() + rng.random() * THREADS / max(self.rate, 1.0)
        n = 0
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            if self.rate <= 0:  # paused while the pipeline drains a backlog
                next_at = time.monotonic() + 0.1
                continue
            next_at += THREADS / self.rate
            key = rng.randrange(ROWS)
            n += 1
            t0 = time.monotonic()
            try:
                table.update({"id": key}, {"v": n, "note": f"thread {i} write {n}"})
            except ReplicatorError as exc:
                with self._lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            t1 = time.monotonic()
            with self._lock:
                self.done.append((t1, t1 - t0))
            next_at = max(next_at, time.monotonic())  # a write that waited does not trigger a burst

    def longest_between(self, start: float, end: float) -> float:
        with self._lock:
            return max((took for at, took in self.done if start <= at <= end), default=0.0)

    def rate_between(self, start: float, end: float) -> float:
        with self._lock:
            return sum(1 for at, _ in self.done if start <= at <= end) / max(end - start, 1e-9)


class Bench:
    def __init__(self) -> None:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        self.unique = "bs" + uuid.uuid4().hex[:8]
        admin = admin_mysql(load_settings())
        password = admin.password.get_secret_value()
        self.settings = load_settings(
            kafka={"topic_prefix": self.unique, "partitions": 2},
            dynamodb={"table_prefix": f"{self.unique}-", "streams": True},
            control={"namespace": self.unique}, tables=[{"source": f"{self.unique}.items"}],
            client={"mysql_user": admin.user, "mysql_password": password},
            cutover={"fence_table": f"{self.unique}.fence", "mysql_user": admin.user,
                     "mysql_password": password},
            log={"level": os.environ.get("BENCH_SWITCH_LOG", "warning")})
        self.source = f"{self.unique}.items"
        self.ddb = dynamodb_client(self.settings.dynamodb)
        self.admin = mysql_connect(admin_mysql(self.settings), autocommit=True)
        self.pipeline = Pipeline(self.settings, self.unique, Path(".stack/logs"))
        self.steps: dict[int, dict[str, list[float]]] = {}  # target -> step -> seconds, from the audit

    # ----------------------------------------------------------------- set-up and clean-up

    def setup(self) -> None:
        with self.admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{self.unique}`")
            cur.execute(f"USE `{self.unique}`")
            cur.execute(DDL)
        self.pipeline.write_config()
        self.pipeline.spawn("writer", "write", "--create-tables")
        self.pipeline.spawn("reader", "run")
        with open_control_store(self.settings) as store:
            self._wait("the writer's heartbeat", lambda: store.get_marker(names.WRITER_HEARTBEAT) is not None)
            self.pipeline.spawn("reverse", "reverse")
            self._wait("the reverse replication's heartbeat",
                       lambda: store.get_marker(names.REVERSE_HEARTBEAT) is not None)
        with self.admin.cursor() as cur:  # the rows the load updates, through the pipeline
            cur.executemany(f"INSERT INTO `{self.unique}`.items VALUES (%s, 0, 'seed', NOW(6))",
                            [(k,) for k in range(ROWS)])

    def _wait(self, what: str, cond: Any, timeout_s: float = START_DEADLINE_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            self.pipeline.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"bench_switch: no {what} within {timeout_s:.0f} s; "
                                   f"see {self.pipeline.logs}")
            time.sleep(0.2)

    def teardown(self) -> None:
        self.pipeline.stop()
        self.admin.close()
        remove_run(self.settings, self.unique)

    # ----------------------------------------------------------------- the baseline

    def bare_rate(self, stream: bool) -> float:
        """8 threads of conditional PutItem into a scratch table for BASELINE_S; items/s. With
        ``stream``, the table has a NEW_AND_OLD_IMAGES stream like the pipeline's tables (phase 5's
        way back reads it; DynamoDB Local slows down with every stream record it keeps)."""
        table = f"{self.unique}-bare-{'stream' if stream else 'plain'}"
        spec = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        extra: dict[str, Any] = {"StreamSpecification": spec} if stream else {}
        self.ddb.create_table(TableName=table, BillingMode="PAY_PER_REQUEST",
                              AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
                              KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}], **extra)
        self._wait("scratch table", lambda: self.ddb.describe_table(TableName=table)["Table"]["TableStatus"]
                   == "ACTIVE", 60)
        counts = [0] * THREADS
        stop = time.monotonic() + BASELINE_S

        def loop(i: int) -> None:
            ddb = dynamodb_client(self.settings.dynamodb)
            n = 0
            while time.monotonic() < stop:
                n += 1
                ddb.put_item(TableName=table, Item={
                    "id": {"N": str(i * 10**6 + n % ROWS)}, "_version": {"N": str(n)},
                    "v": {"N": str(n)}, "note": {"S": f"thread {i} write {n}"}},
                    ConditionExpression="attribute_not_exists(#v) OR #v < :v",
                    ExpressionAttributeNames={"#v": "_version"},
                    ExpressionAttributeValues={":v": {"N": str(n)}})
                counts[i] += 1

        threads = [threading.Thread(target=loop, args=(i,)) for i in range(THREADS)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(BASELINE_S + 30)
        return sum(counts) / (time.monotonic() - started)

    # ----------------------------------------------------------------- the switches

    def run(self) -> dict[str, Any]:
        plain = self.bare_rate(stream=False)
        bare = self.bare_rate(stream=True)
        rate = bare / 2
        print(f"bare boto3 conditional PutItem, {THREADS} threads: {bare:.0f} items/s into a table with a "
              f"stream, as the pipeline's ({plain:.0f}/s without); the application writes at {rate:.0f}/s")
        client = connect(self.settings, name="bench")
        writers = Writers(client, self.source, rate)
        asked = rate
        pauses: dict[int, list[float]] = {5: [], 4: []}
        protocol: dict[int, list[float]] = {5: [], 4: []}
        aborts: list[str] = []
        try:
            with open_phase_controller(self.settings) as ctl:
                for p in (2, 3, 4):
                    ctl.set_migration_phase(p, reason="bench", actor="bench", force=True)
                self._wait("the client in phase 4", lambda: client.phase.phase == 4)
                writers.start()
                rate = self._sustained(ctl, writers)
                t_load = time.monotonic()
                time.sleep(SETTLE_S)
                for _ in range(SWITCHES):
                    passed, lag = self._lag_gate(ctl)
                    if not passed:
                        print(f"  the lag gate did not pass within {LAG_GATE_WAIT_S:.0f} s ({lag}): "
                              "switching anyway")
                    if not self._one(ctl, client, writers, 5, pauses, protocol, aborts, lag):
                        continue
                    time.sleep(SETTLE_S)
                    self._one(ctl, client, writers, 4, pauses, protocol, aborts, "")
                    time.sleep(SETTLE_S)
                t_end = time.monotonic()
        finally:
            writers.stop()
            client.close()
        achieved = writers.rate_between(t_load, t_end)
        figures = _report(bare, asked, rate, achieved, pauses, protocol, aborts, writers.errors)
        for target, steps in sorted(self.steps.items()):
            p50 = {step: round(_pct(xs, 0.5) * 1000, 1) for step, xs in steps.items()}
            print(f"-> {target}: p50 ms per step: " + ", ".join(f"{k} {v}" for k, v in p50.items()))
            figures[f"to_{target}"]["steps_p50_ms"] = p50
        figures["bare_items_per_s_without_stream"] = round(plain, 1)
        return figures

    def _sustained(self, ctl: Any, writers: Writers) -> float:
        """The asked rate, or a lower one if the pipeline cannot keep up with it (the lag gate does
        not pass): then the load pauses, the backlog drains, and half the rate is tried."""
        while True:
            deadline = time.monotonic() + CALIBRATE_S
            while time.monotonic() < deadline:
                if self._lag_gate(ctl, wait_s=0.0)[0]:
                    time.sleep(1.0)
                    if self._lag_gate(ctl, wait_s=0.0)[0]:
                        return writers.rate
                time.sleep(0.5)
            if writers.rate <= MIN_RATE:
                print(f"  the pipeline does not keep up even at {writers.rate:.0f} writes/s: "
                      "switching anyway")
                return writers.rate
            print(f"  the pipeline does not keep up with {writers.rate:.0f} writes/s "
                  f"({self._lag_gate(ctl, wait_s=0.0)[1]}): draining, then trying {writers.rate / 2:.0f}/s")
            slower, writers.rate = writers.rate / 2, 0.0
            self._lag_gate(ctl, wait_s=DRAIN_WAIT_S)
            writers.rate = max(slower, MIN_RATE)

    def _lag_gate(self, ctl: Any, wait_s: float = LAG_GATE_WAIT_S) -> tuple[bool, str]:
        """Wait (bounded) for the 4 -> 5 lag gate as an operator would: passed, what it measured."""
        deadline = time.monotonic() + wait_s
        while True:
            result = next(r for r in ctl.check(5) if r.gate == REPLICATION_LAG)
            if result.passed or time.monotonic() >= deadline:
                return result.passed, str(result.measured)
            time.sleep(0.5)

    def _one(self, ctl: Any, client: Client, writers: Writers, target: int, pauses: dict[int, list[float]],
             protocol: dict[int, list[float]], aborts: list[str], lag: str) -> bool:
        t0 = time.monotonic()
        try:
            ctl.set_migration_phase(target, reason="bench", actor="bench", force=True)
        except SwitchAborted as exc:
            aborts.append(f"-> {target} (lag gate measured {lag or 'n/a'}): {exc}")
            print(f"  switch to {target} aborted (lag gate measured {lag or 'n/a'}): {exc}")
            return False
        self._wait(f"the client in phase {target}",
                   lambda: client.phase.phase == target and not client.phase.frozen, 30)
        entry = ctl.history()[-1]
        t1 = time.monotonic()
        time.sleep(1.0)  # the writes that waited out the freeze are answered by now
        pauses[target].append(writers.longest_between(t0, t1 + 1.0))
        protocol[target].append(float(entry.details.get("pause_s", 0.0)))
        for step, seconds in (entry.details.get("steps") or {}).items():
            self.steps.setdefault(target, {}).setdefault(step, []).append(float(seconds))
        return True


def _report(bare: float, asked: float, rate: float, achieved: float, pauses: dict[int, list[float]],
            protocol: dict[int, list[float]], aborts: list[str], errors: list[str]) -> dict[str, Any]:
    figures: dict[str, Any] = {"bare_items_per_s": round(bare, 1), "asked_rate": round(asked, 1),
                               "sustained_rate": round(rate, 1), "achieved_rate": round(achieved, 1),
                               "aborted": len(aborts), "application_errors": len(errors)}
    if rate < asked:
        print(f"the pipeline kept up with {rate:.0f} writes/s, not the {asked:.0f}/s asked (half the bare "
              "loop): the switches ran at the lower rate")
    print(f"{'switch':<8}{'n':>4}{'app pause p50 ms':>18}{'app pause max ms':>18}"
          f"{'freeze p50 ms':>15}{'freeze max ms':>15}")
    for target, label in ((5, "4 -> 5"), (4, "5 -> 4")):
        app, proto = pauses[target], protocol[target]
        key = f"to_{target}"
        figures[key] = {"switches": len(app),
                        "app_pause_p50_ms": round(_pct(app, 0.5) * 1000, 1),
                        "app_pause_max_ms": round(max(app, default=0.0) * 1000, 1),
                        "freeze_p50_ms": round(_pct(proto, 0.5) * 1000, 1),
                        "freeze_max_ms": round(max(proto, default=0.0) * 1000, 1)}
        f = figures[key]
        print(f"{label:<8}{len(app):>4}{f['app_pause_p50_ms']:>18.1f}{f['app_pause_max_ms']:>18.1f}"
              f"{f['freeze_p50_ms']:>15.1f}{f['freeze_max_ms']:>15.1f}")
    worst = max(figures["to_5"]["app_pause_max_ms"], figures["to_4"]["app_pause_max_ms"])
    print(f"application writes: {achieved:.0f}/s achieved of {rate:.0f}/s paced; errors {len(errors)}, "
          f"aborted switches {len(aborts)}")
    for e in errors[:5]:
        print(f"  error: {e}")
    print(f"longest application write pause {worst:.0f} ms: target < 1000 ms "
          f"{'met' if worst < 1000 and not aborts else 'MISSED'}")
    figures["target_met"] = worst < 1000 and not aborts
    return figures


def main() -> dict[str, Any]:
    configure_logging(LogSettings(level="warning"))
    bench = Bench()
    try:
        t0 = time.monotonic()
        bench.setup()
        print(f"pipeline (reader, writer, reverse) up in {time.monotonic() - t0:.1f} s")
        return bench.run()
    finally:
        bench.teardown()

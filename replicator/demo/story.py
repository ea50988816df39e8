"""The demo's story: the migration guide's phases, told step by step on the local stack.

A small shop database (users, orders, order items) mapped to one DynamoDB table the way the
workshop models it (each user's partition holds the user and their orders, each order's items
are embedded in the order's item: :func:`demo_settings`) and a sample application that uses it
through the client (``examples/shop``: an HTTP service and its load generator, injected as a
:class:`SampleApp`);
the real reader and writer run as processes; the backfill copies what existed while the shop
writes; a row-by-row comparison proves DynamoDB equals MySQL; and the phase controller walks
the guide's phases 1 -> 2 -> 3 -> 4 on its measured gates, with what the shop's users saw at
each phase (errors, latency), what the client counted (phase-3 validations, phase-4 reads by
store) and the 4 -> 5 gates judged on those reads. Then the write target moves to DynamoDB on
the switch protocol (freeze, fence MySQL, drain, flip: docs/design.md) under the shop's load,
the shop runs on DynamoDB alone while reverse replication keeps MySQL current, and the way
back 5 -> 4 runs the same protocol the other way; MySQL is compared with DynamoDB row for row
after each switch, and the shop's longest write pause is shown. Last, an emergency rollback.

The row-by-row comparison is injected too (``compare``): it belongs to the validators, and
this package sits below them.
"""

from __future__ import annotations

import random
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from replicator.adapters import mysql
from replicator.backfill.runner import Backfill, BackfillOptions
from replicator.client import Client, connect
from replicator.control import names, open_control_store
from replicator.demo.app import ClientFigures, Load, LoadFigures, SampleApp, Service
from replicator.demo.cleanup import remove_demo_resources
from replicator.demo.printing import (
    gates_table,
    history_table,
    load_table,
    reads_lines,
    switch_lines,
    validations_lines,
    visit_line,
)
from replicator.demo.processes import Pipeline
from replicator.demo.workload import (
    MySQLExecutor,
    PlaceOrder,
    ShopWorkload,
    create_app_user,
    create_schema,
    seed,
)
from replicator.diff import Difference
from replicator.errors import ReplicatorError, SourceUnavailable, SwitchAborted
from replicator.health import run_probes
from replicator.phase import open_phase_controller
from replicator.phase.gates import DYNAMODB_READ_ERRORS, GateResult
from replicator.phase.probes import WINDOW_INTO, KafkaOffsetProbe
from replicator.settings import Settings, load_settings
from replicator.topics import table_topic

FLAGS = ("migration_phase", "dual_write_enabled", "dual_read_enabled", "read_from_dynamodb",
         "validation_enabled")
DEMO_SERVER_IDS = 7_000_000  # the demo readers' server_ids: this plus a number from the run's id
GATE_WAIT_S = 60.0  # how long the gates may take to pass after the soak (then they are shown, and judged)
SWITCH_ATTEMPTS = 3  # an aborted switch loses nothing; the operator (here the demo) tries again
# The backfill waits this long for the writer to apply what it copied (~21,000 rows and entries for
# 3000 users: ~1 min on a quiet 2-core machine, over 5 min on a loaded one), up to this many times.
BACKFILL_WAIT_S = 300.0
BACKFILL_WAITS = 3


class TableComparison(Protocol):
    """One table's result of comparing MySQL with DynamoDB."""

    @property
    def table(self) -> str: ...
    @property
    def mysql_rows(self) -> int: ...
    @property
    def dynamodb_items(self) -> int: ...
    @property
    def tombstones(self) -> int: ...
    @property
    def differences(self) -> Sequence[Difference]: ...
    @property
    def ok(self) -> bool: ...


Compare = Callable[[Settings], Sequence[TableComparison]]
"""Compares every mapped table of the settings, MySQL against DynamoDB."""


@dataclass(frozen=True)
class DemoOptions:
    admin_user: str
    admin_password: str
    rows: int = 3000
    ops_per_s: float = 40.0  # requests/s the load generator sends the shop, reads and writes
    soak_s: float = 15.0
    keep: bool = False
    log_dir: Path = Path(".stack/logs")
    threads: int = 8


def shop_tables(db: str) -> list[dict[str, Any]]:
    """The shop's single-table model (docs/model.md): users and their orders in one DynamoDB table,
    one partition per user (``users.query("collection", ...)``: the user and their orders in one
    Query), each order's items a map in the order's item (``orders.get(..., include=["items"])``)."""
    return [
        {"source": f"{db}.users", "target": "shop", "key": {"pk": "USER#{id}", "sk": "#PROFILE"},
         "collections": [{"name": "collection", "members": {f"{db}.orders": {"user_id": "id"}}}]},
        {"source": f"{db}.orders", "target": "shop",
         "key": {"pk": "USER#{user_id}", "sk": "ORDER#{id:012d}"}},
        {"source": f"{db}.order_items",
         "embed": {"parent": f"{db}.orders", "as": "items", "on": {"order_id": "id", "user_id": "user_id"}}},
    ]


def demo_settings(base: Settings, run_id: str, soak_s: float) -> Settings:
    """The base settings, namespaced by ``run_id``, mapping the shop's tables on the single-table
    model (:func:`shop_tables`), with short gates. The reader presents a server_id of its own, so
    that it never displaces another reader of the same server (MySQL allows one per id)."""
    return load_settings(
        kafka={**base.kafka.model_dump(), "topic_prefix": run_id},
        # Streams on: the way back from phase 5 (reverse replication) reads them.
        dynamodb={**base.dynamodb.model_dump(), "table_prefix": f"{run_id}-", "streams": True},
        control={**base.control.model_dump(), "namespace": run_id},
        mysql={**base.mysql.model_dump(), "password": base.mysql.password.get_secret_value(),
               "server_id": DEMO_SERVER_IDS + int(uuid.uuid5(uuid.NAMESPACE_DNS, run_id)) % 1_000_000},
        # The fence row of the write-target switch lives in the run's own database, where the
        # shop's user may read it (every client write transaction does) and the clean-up drops it;
        # so does the reverse replication's table of the versions it applied to MySQL's rows.
        cutover={**base.cutover.model_dump(), "fence_table": f"{run_id}.fence",
                 "reverse_versions_table": f"{run_id}.reverse_versions"},
        gates={**base.gates.model_dump(), "window_2_3_s": soak_s, "window_3_4_s": soak_s,
               "window_4_5_s": soak_s, "min_validations": 100},
        tables=shop_tables(run_id),
        log=base.log.model_dump(),
    )


class Demo:
    def __init__(self, base: Settings, opts: DemoOptions, compare: Compare, app: SampleApp,
                 console: Console | None = None) -> None:
        self.opts, self.compare, self.app = opts, compare, app
        self.console = console or Console()
        self.run_id = "demo" + uuid.uuid4().hex[:6]
        self.db = self.run_id
        settings = demo_settings(base, self.run_id, opts.soak_s)
        self.admin = settings.mysql.model_copy(
            update={"user": opts.admin_user, "password": SecretStr(opts.admin_password)})
        # The shop's own MySQL user (DML on its database only): the shop's client and the reverse
        # replication write with it; the reader keeps mysql.user. Only the controller, in this
        # process, flips the fence row: it does so as the administrator.
        self.app_user = f"{self.run_id}_app"
        client = settings.client.model_copy(
            update={"mysql_user": self.app_user, "mysql_password": SecretStr(secrets.token_urlsafe(18))})
        self.client_settings = settings.model_copy(update={"client": client})
        self.settings = settings.model_copy(update={"cutover": settings.cutover.model_copy(
            update={"mysql_user": opts.admin_user, "mysql_password": SecretStr(opts.admin_password)})})
        self.pipeline = Pipeline(self.client_settings, self.run_id, opts.log_dir)
        self.client: Client | None = None
        self.service: Service | None = None
        self.load: Load | None = None
        self.figures: LoadFigures | None = None  # the load's final report, once stopped

    def run(self) -> int:
        try:
            return self._run()
        finally:
            self._stop_application()
            self.pipeline.stop()
            if not self.opts.keep:
                failed = remove_demo_resources(self.settings, self.admin, self.db, users=[self.app_user])
                if failed:
                    self.say(f"[yellow]cleanup incomplete ({'; '.join(failed)}); "
                             f"resources are prefixed {self.run_id}")

    def _run(self) -> int:
        self.pipeline.write_config()
        if not self._stack():
            return 1
        head = self._application()
        self._pipeline(head)
        self.step(4, "phase 1 -> 2 (dual write): gated on DynamoDB tables and a connected writer")
        self.say(visit_line(self.loaded().report().last(1), 1))
        self.change_phase(2, "demo: start dual writes")
        self._backfill()
        if not self._drain_and_compare():
            return 1
        self._validation_phases()
        gates_passed = self._transition_phase()
        switched = gates_passed and self._cutover() and self._phase5_and_back()
        self._rollback()
        return self._verdict(gates_passed, switched)

    # ----------------------------------------------------------------- the steps

    def _stack(self) -> bool:
        self.step(1, "the stack")
        probes = run_probes(self.settings)
        for probe in probes:
            self.say(f"  {probe.service:9s} {'ok' if probe.ok else 'FAILED'}  {probe.detail}")
            if not probe.ok:
                return False
        return True

    def _application(self) -> tuple[str, int]:
        """Create and fill the shop, start its service and load; returns the binlog head before them."""
        o = self.opts
        self.step(2, f"phase 1 (MySQL only): the shop runs on MySQL ({self.db})")
        seeder = MySQLExecutor(mysql.connect(self.admin))
        try:
            create_schema(seeder.conn, self.db)
            secret = self.client_settings.client.mysql_password
            create_app_user(seeder.conn, self.db, self.app_user, secret.get_secret_value() if secret else "",
                            fence_table=self.client_settings.cutover.fence_table,
                            versions_table=self.client_settings.cutover.reverse_versions_table)
            ops = list(seed(o.rows))
            seeder.apply_many(ops)
            head = seeder.binlog_head()
        finally:
            seeder.close()
        items = sum(len(op.items) for op in ops if isinstance(op, PlaceOrder))
        self.say(f"  {o.rows} users, {2 * o.rows} orders and {items} order items already exist; "
                 f"binlog head {head[0]}:{head[1]}")
        self.say(f"  in DynamoDB one table, {self.settings.dynamodb.table_prefix}shop: a partition per user "
                 "(USER#<id>) holding the user (#PROFILE) and their orders (ORDER#<id>), each order's "
                 "items embedded in its item")
        self.client = connect(self.client_settings, name="shop-api")
        self.service = self.app.serve(self.client)
        rng = random.Random(42)  # noqa: S311 - a workload, not cryptography
        self.load = self.app.load(self.service.url, ShopWorkload(rng, o.rows + 1), o.ops_per_s, o.threads)
        self.load.start()
        self.say(f"  the shop service (examples/shop) answers on {self.service.url}; all its reads and "
                 f"writes go through replicator.client, as MySQL user {self.app_user} "
                 f"(DML on {self.db} only)")
        self.say(f"  its load generator sends ~{o.ops_per_s:.0f} requests/s (reads and writes) "
                 f"from {o.threads} threads from now on")
        self.flags()
        return head

    def _pipeline(self, head: tuple[str, int]) -> None:
        self.step(3, "start the pipeline: binlog reader -> Kafka -> DynamoDB writer")
        self.pipeline.spawn("reader", "run", "--from", f"{head[0]}:{head[1]}")
        self.pipeline.spawn("writer", "write", "--create-tables")
        with open_control_store(self.settings) as store:
            self.wait_for("waiting for the writer to connect",
                          lambda: store.get_marker(names.WRITER_HEARTBEAT) is not None)
            # The way back from phase 5: DynamoDB Streams -> MySQL (the writer turned the streams on).
            self.pipeline.spawn("reverse", "reverse")
            self.wait_for("waiting for the reverse replication to start",
                          lambda: store.get_marker(names.REVERSE_HEARTBEAT) is not None)
        self.say(f"  reader and writer running (the writer created the shop's table and its stream), and "
                 f"the reverse replication for the way back; logs in {self.pipeline.logs}")

    def _backfill(self) -> None:
        """Copy the existing rows; the backfill then waits (bounded) for the writer to apply them. On
        a busy machine that wait can run out: the backfill is run again, which copies nothing twice
        (its tables are marked copied) and waits again, up to BACKFILL_WAITS waits in all."""
        self.step(5, "backfill the rows that existed before the stream, while the shop writes")
        opts = BackfillOptions(chunk_rows=500, max_rows_per_s=0, wait_timeout_s=BACKFILL_WAIT_S)
        for attempt in range(1, BACKFILL_WAITS + 1):
            backfill = Backfill(self.settings, opts)
            progress = backfill.run()
            if attempt == 1:
                for p in progress:
                    self.say(f"  {p.source}: {p.done} rows copied in {p.chunks} chunks, "
                             f"{p.dead_lettered} dead-lettered")
            if backfill.applied is not False or attempt == BACKFILL_WAITS:
                break
            self.pipeline.check_alive()
            self.say(f"[yellow]  the writer has not applied every copied row within {BACKFILL_WAIT_S:.0f} s "
                     f"(a busy machine): the backfill waits again ({attempt + 1}/{BACKFILL_WAITS})")

    def _drain_and_compare(self) -> bool:
        self.step(6, "pause the shop's writes (its reads go on), let the pipeline drain, compare every row")
        return self.settle_and_compare("replication lag to reach zero", lambda: self.writer_lag() == 0)

    def settle_and_compare(self, what: str, drained: Callable[[], bool]) -> bool:
        """Pause the shop's writes, wait until ``drained``, compare every row, resume the writes."""
        load = self.loaded()
        if not load.pause_writes(30.0):
            self.say("[yellow]  writes were still in flight after 30 s")
        self.say(f"  the shop made {load.report().changes} changes so far")
        self.wait_for(f"waiting for {what}", drained)
        same = all(r.ok for r in self.comparison())
        load.resume_writes()
        if not same:
            self.say("[red]DynamoDB differs from MySQL: see the differences above (Data validation failed)")
            return False
        self.say("  MySQL and DynamoDB are equal row for row; the shop's writes resume")
        return True

    def _validation_phases(self) -> None:
        soak = self.opts.soak_s
        self.step(7, f"phase 2 -> 3 (validation): dual-write success >= 99% over a {soak:.0f}s soak "
                     "(the guide's 24 h, shortened) and a complete backfill")
        self.soak()
        self.await_gates(3)
        self.say(visit_line(self.loaded().report().last(2), 2))
        self.change_phase(3, "demo: dual writes healthy, start validating")

        self.step(8, "phase 3 -> 4 (DynamoDB reads): the client's validation error rate < 0.1% over the soak")
        self.soak()
        self.await_gates(4)  # a slow machine makes fewer reads, so fewer validations: wait for enough
        passed, failed = self.window(names.VALIDATION_PASSED, 4), self.window(names.VALIDATION_FAILED, 4)
        for line in validations_lines(ClientFigures.of(self.connected().metrics.registry), passed, failed):
            self.say(line)
        self.say(visit_line(self.loaded().report().last(3), 3))
        self.change_phase(4, "demo: validation clean, read from DynamoDB")

    def _transition_phase(self) -> bool:
        """Phase 4: reads from DynamoDB, then the 4 -> 5 gates on what the client measured."""
        self.step(9, "phase 4 (DynamoDB reads), and the 4 -> 5 gates on the reads the client measured")
        registry = self.connected().metrics.registry
        start = ClientFigures.of(registry)
        self.soak()
        for line in reads_lines(ClientFigures.of(registry).since(start)):
            self.say(line)
        self.say(visit_line(self.loaded().report().last(4), 4))
        self.say("  the lag gate is judged while the shop writes (a small allowance); the switch drains "
                 "the lag to exactly zero under its write freeze")
        results = self.await_gates(5)
        gates_table(self.console, 5, results)
        reads = next((r.measured for r in results if r.gate == DYNAMODB_READ_ERRORS), "not measured")
        passed = all(r.passed for r in results)
        verdict = "[green]PASSED[/]" if passed else "[red]NOT MET[/]"
        self.say(f"  4 -> 5 gates: {verdict}; DynamoDB read errors {reads}: the reads the client counted "
                 f"({names.DYNAMODB_READ_OK} / {names.DYNAMODB_READ_FAILED}) over the soak window")
        return passed

    def _cutover(self) -> bool:
        self.step(10, "phase 4 -> 5 (DynamoDB only) on the switch protocol, the shop writing: freeze its "
                      "writes, fence MySQL, drain the pipeline to the fence, flip")
        if not self.switch(5, "demo: cut over to DynamoDB"):
            return False
        self.step(11, "phase 5: the shop on DynamoDB alone; reverse replication keeps MySQL current "
                      "(Streams -> MySQL, only the application's writes)")
        self.soak(min(self.opts.soak_s, 10.0))
        self.say(visit_line(self.loaded().report().last(5), 5))
        since = time.time()
        return self.settle_and_compare("the reverse replication to catch up",
                                       lambda: self.reverse_caught_up(since))

    def _phase5_and_back(self) -> bool:
        self.step(12, "phase 5 -> 4, the way back on the same protocol: freeze, fence DynamoDB, drain the "
                      "reverse replication, flip; the shop writing")
        if not self.switch(4, "demo: back to MySQL as the write target"):
            return False
        self.soak(min(self.opts.soak_s, 5.0))
        self.say(visit_line(self.loaded().report().last(4), 4))
        return self.settle_and_compare("replication lag to reach zero", lambda: self.writer_lag() == 0)

    def switch(self, target: int, reason: str) -> bool:
        """One switch of the write target under load (retried after an abort, which loses nothing);
        prints its steps and what the shop saw: its longest write pause and its errors."""
        before = self.loaded().report()
        client = self.connected()
        for attempt in range(1, SWITCH_ATTEMPTS + 1):
            with open_phase_controller(self.settings) as ctl:
                epoch = ctl.get_state().epoch
                try:
                    res = ctl.set_migration_phase(target, reason=reason, actor="demo")
                except SwitchAborted as exc:
                    self.say(f"[yellow]  attempt {attempt}: {exc}")
                    continue
                entry = ctl.history()[-1]
            break
        else:
            self.say(f"[red]  the switch to phase {target} aborted {SWITCH_ATTEMPTS} times: see why above")
            return False
        self.say(f"  Migration phase {res.transition.from_phase} -> {target}: {reason}")
        self.flags()
        pause = entry.details.get("pause_s")
        for line in switch_lines(entry.details, float(pause) if pause is not None else None):
            self.say(line)
        self.wait_for(f"the shop's client to follow phase {target}",
                      lambda: client.phase.phase == target and not client.phase.frozen)
        time.sleep(1.0)  # the writes that waited out the freeze are answered by now
        report = self.loaded().report()
        longest = max((v.longest_write_ms for v in report.visits if v.epoch > epoch), default=0.0)
        errors = report.errors - before.errors
        colour = "green" if not errors else "red"
        self.say(f"  what the shop saw: longest write {longest:.0f} ms, [{colour}]{errors} errors[/] "
                 f"(bound cutover.max_write_pause_s = {self.settings.cutover.max_write_pause_s:g} s)")
        return True

    def _rollback(self) -> None:
        self.step(13, "emergency rollback straight to phase 1 (allowed from any phase), the shop running")
        self.change_phase(1, "demo: emergency rollback drill")
        self.soak(min(self.opts.soak_s, 5.0))
        load = self.loaded()
        load.stop()
        self.figures = load.report()
        self.say(visit_line(self.figures.last(1), 1))
        load_table(self.console, self.figures)
        with open_phase_controller(self.settings) as ctl:
            history = ctl.history()
        history_table(self.console, history)

    def _verdict(self, gates_passed: bool, switched: bool) -> int:
        figures = self.figures
        assert figures is not None  # set by _rollback
        phases = " -> ".join(str(v.phase) for v in figures.visits)
        self.say(f"  the shop answered {figures.requests} requests in phases {phases}: "
                 f"{figures.errors} application errors")
        failure = ("the shop's users saw errors (above)" if figures.errors
                   else "the 4 -> 5 gates were not met (above)" if not gates_passed
                   else "the switch to phase 5 and back did not complete, or the stores differed (above)"
                   if not switched else "")
        if failure:
            self.say(f"[red]demo failed: {failure}")
            return 1
        self.say("[green]demo complete: the shop ran through the phases with 0 application errors, DynamoDB "
                 "matched MySQL row for row, the 4 -> 5 gates passed on measured DynamoDB reads, the write "
                 "target went to DynamoDB and back on the switch protocol with MySQL equal to DynamoDB after "
                 "each switch, and every phase change is audited.")
        return 0

    def _stop_application(self) -> None:
        """Stop the load, the service and the client (each once, each even if another fails)."""
        load, service, client = self.load, self.service, self.client
        self.load = self.service = self.client = None
        if load is not None:
            load.stop()
        if service is not None:
            service.stop()
        if client is not None:
            try:
                client.close()
            except ReplicatorError as exc:
                self.say(f"[yellow]  the client did not close cleanly: {exc}")

    # ----------------------------------------------------------------- measuring and acting

    def loaded(self) -> Load:
        if self.load is None:
            raise SourceUnavailable("the shop's load generator is not running")
        return self.load

    def connected(self) -> Client:
        if self.client is None:
            raise SourceUnavailable("the shop's client is not connected")
        return self.client

    def comparison(self) -> Sequence[TableComparison]:
        reports = self.compare(self.settings)
        t = Table(title="MySQL vs DynamoDB, row by row through the mapping")
        for col in ("table", "mysql rows", "dynamodb items", "tombstones", "differences"):
            t.add_column(col)
        for r in reports:
            t.add_row(r.table, str(r.mysql_rows), str(r.dynamodb_items), str(r.tombstones),
                      "[green]0[/]" if r.ok else f"[red]{len(r.differences)}[/]")
        self.console.print(t)
        return reports

    def reverse_caught_up(self, since: float) -> bool:
        """Has the reverse replication read every stream to its end at some point after ``since``?"""
        with open_control_store(self.settings) as store:
            beat = store.get_marker(names.REVERSE_HEARTBEAT) or {}
        return float(beat.get("caught_up_at", 0)) > since

    def writer_lag(self) -> int:
        topics = [table_topic(self.settings.kafka.topic_prefix, t.source) for t in self.settings.tables]
        lags = KafkaOffsetProbe(self.settings.kafka).topic_lags(self.settings.writer_group, topics)
        return sum(lags.values())

    def window(self, counter: str, target: int) -> int:
        """A gate counter summed over the soak window of the step into ``target``, as the gate sums it."""
        window = float(getattr(self.settings.gates, WINDOW_INTO[target]))
        now = time.time()
        with open_control_store(self.settings) as store:
            return store.window_sum(counter, now - window, now)

    def await_gates(self, target: int, timeout_s: float = GATE_WAIT_S) -> list[GateResult]:
        """The gates into ``target``, measured again each second until they pass (bounded); the last
        measurement either way. The soak is the guide's minimum, not a promise that the evidence
        (dual writes, validations, DynamoDB reads) is there by then."""
        deadline = time.monotonic() + timeout_s
        with open_phase_controller(self.settings) as ctl, \
                self.console.status(f"checking the gates into phase {target} until they pass"):
            while True:
                results = ctl.check(target)
                if all(r.passed for r in results) or time.monotonic() > deadline:
                    return results
                self.pipeline.check_alive()
                time.sleep(1.0)

    def change_phase(self, target: int, reason: str, *, force: bool = False) -> None:
        with open_phase_controller(self.settings) as ctl:
            if target > ctl.get_state().phase:
                gates_table(self.console, target, ctl.check(target))
            res = ctl.set_migration_phase(target, reason=reason, actor="demo", force=force)
        forced = f" (forced: {', '.join(res.forced_gates)})" if res.forced_gates else ""
        self.say(f"  Migration phase {res.transition.from_phase} -> {target}{forced}: {reason}")
        self.flags()

    def flags(self) -> None:
        with open_phase_controller(self.settings) as ctl:
            f = ctl.get_all_flags()
        self.say("  " + "  ".join(f"{k}={f[k]}" for k in FLAGS))

    def wait_for(self, what: str, cond: Callable[[], bool], timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        with self.console.status(what):
            while not cond():
                if time.monotonic() > deadline:
                    raise SourceUnavailable(f"timed out: {what}; see the logs in {self.opts.log_dir}")
                self.pipeline.check_alive()
                time.sleep(0.5)

    def soak(self, seconds: float | None = None) -> None:
        s = self.opts.soak_s + 1 if seconds is None else seconds
        deadline = time.monotonic() + s
        with self.console.status(f"soaking for {s:.0f}s"):
            while time.monotonic() < deadline:
                self.pipeline.check_alive()
                time.sleep(0.5)

    # ----------------------------------------------------------------- printing

    def say(self, text: str) -> None:
        self.console.print(text)

    def step(self, n: int, title: str) -> None:
        self.console.rule(f"[bold]{n}. {title}")

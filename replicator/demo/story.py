"""The demo's story: the migration guide's phases, told step by step on the local stack.

A small shop database gets a live application workload; the real reader and writer run as
processes; the backfill copies what existed; a comparison proves DynamoDB equals MySQL; and
the phase controller walks the guide's phases with its measured gates, down to an emergency
rollback. Every step prints what it did and what it measured. What is not built (the client
shim, so no DynamoDB reads are measured) is said plainly where it matters.

The row-by-row comparison is injected (``compare``): it belongs to the validators, and this
package sits below them.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from replicator.adapters import mysql
from replicator.backfill.runner import Backfill, BackfillOptions
from replicator.control import names, open_control_store
from replicator.demo.cleanup import remove_demo_resources
from replicator.demo.processes import Pipeline
from replicator.demo.workload import MySQLExecutor, PacedWorkload, ShopWorkload, create_schema, seed
from replicator.diff import Difference
from replicator.errors import SourceUnavailable
from replicator.health import run_probes
from replicator.phase import open_phase_controller
from replicator.phase.gates import GateResult
from replicator.phase.probes import KafkaOffsetProbe
from replicator.settings import Settings, load_settings
from replicator.topics import table_topic

FLAGS = ("migration_phase", "dual_write_enabled", "dual_read_enabled", "read_from_dynamodb",
         "validation_enabled")


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
    ops_per_s: float = 40.0
    soak_s: float = 15.0
    keep: bool = False
    log_dir: Path = Path(".stack/logs")


def demo_settings(base: Settings, run_id: str, soak_s: float) -> Settings:
    """The base settings, namespaced by ``run_id``, mapping the shop's two tables, with short gates."""
    return load_settings(
        kafka={**base.kafka.model_dump(), "topic_prefix": run_id},
        dynamodb={**base.dynamodb.model_dump(), "table_prefix": f"{run_id}-"},
        control={**base.control.model_dump(), "namespace": run_id},
        mysql={**base.mysql.model_dump(), "password": base.mysql.password.get_secret_value()},
        gates={**base.gates.model_dump(), "window_2_3_s": soak_s, "window_3_4_s": soak_s,
               "window_4_5_s": soak_s, "min_validations": 100},
        tables=[
            {"source": f"{run_id}.users", "target": "users", "key": {"pk": "USER#{id}"}},
            {"source": f"{run_id}.orders", "target": "orders"},
        ],
        log=base.log.model_dump(),
    )


class Demo:
    def __init__(self, base: Settings, opts: DemoOptions, compare: Compare,
                 console: Console | None = None) -> None:
        self.opts, self.compare = opts, compare
        self.console = console or Console()
        self.run_id = "demo" + uuid.uuid4().hex[:6]
        self.db = self.run_id
        self.settings = demo_settings(base, self.run_id, opts.soak_s)
        self.admin = self.settings.mysql.model_copy(
            update={"user": opts.admin_user, "password": SecretStr(opts.admin_password)})
        self.pipeline = Pipeline(self.settings, self.run_id, opts.log_dir)
        self.workload: PacedWorkload | None = None

    def run(self) -> int:
        try:
            return self._run()
        finally:
            self._stop_workload()
            self.pipeline.stop()
            if not self.opts.keep:
                failed = remove_demo_resources(self.settings, self.admin, self.db)
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
        self.change_phase(2, "demo: start dual writes")
        self._backfill()
        if not self._drain_and_compare():
            return 1
        self._validation_phases()
        self._rollback()
        return 0

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
        """Create and fill the shop, start its workload; returns the binlog head before the workload."""
        o = self.opts
        self.step(2, f"phase 1 (MySQL only): the application runs on MySQL ({self.db})")
        seeder = MySQLExecutor(mysql.connect(self.admin))
        try:
            create_schema(seeder.conn, self.db)
            seeder.apply_many(seed(o.rows))
            head = seeder.binlog_head()
        finally:
            seeder.close()
        self.say(f"  {o.rows} users and {2 * o.rows} orders already exist; "
                 f"binlog head {head[0]}:{head[1]}")
        rng = random.Random(42)  # noqa: S311 - a workload, not cryptography
        self.workload = PacedWorkload(ShopWorkload(rng, o.rows + 1),
                                      MySQLExecutor(mysql.connect(self.admin, database=self.db)), o.ops_per_s)
        self.workload.start()
        self.say(f"  the application writes ~{o.ops_per_s:.0f} changes/s from now on")
        self.flags()
        return head

    def _pipeline(self, head: tuple[str, int]) -> None:
        self.step(3, "start the pipeline: binlog reader -> Kafka -> DynamoDB writer")
        self.pipeline.spawn("reader", "run", "--from", f"{head[0]}:{head[1]}")
        self.pipeline.spawn("writer", "write", "--create-tables")
        with open_control_store(self.settings) as store:
            self.wait_for("waiting for the writer to connect",
                          lambda: store.get_marker(names.WRITER_HEARTBEAT) is not None)
        self.say(f"  reader and writer running; logs in {self.pipeline.logs}")

    def _backfill(self) -> None:
        self.step(5, "backfill the rows that existed before the stream, while the application writes")
        opts = BackfillOptions(chunk_rows=500, max_rows_per_s=0, wait_timeout_s=300)
        for p in Backfill(self.settings, opts).run():
            self.say(f"  {p.source}: {p.done} rows copied in {p.chunks} chunks, "
                     f"{p.dead_lettered} dead-lettered")

    def _drain_and_compare(self) -> bool:
        self.step(6, "stop the application's writes, let the pipeline drain, and compare every row")
        done = self._stop_workload()
        self.say(f"  the application made {done} changes during the demo")
        self.wait_for("waiting for replication lag to reach zero", lambda: self.writer_lag() == 0)
        if not all(r.ok for r in self.comparison()):
            self.say("[red]DynamoDB differs from MySQL: see the differences above (Data validation failed)")
            return False
        return True

    def _validation_phases(self) -> None:
        soak = self.opts.soak_s
        self.step(7, f"phase 2 -> 3 (validation): dual-write success >= 99% over a {soak:.0f}s soak "
                     "(the guide's 24 h, shortened) and a complete backfill")
        self.soak()
        self.change_phase(3, "demo: dual writes healthy, start validating")

        self.step(8, "phase 3 -> 4 (DynamoDB reads): validation error rate < 0.1% over the soak")
        self.soak()
        self.comparison()
        self.change_phase(4, "demo: validation clean, read from DynamoDB")

        self.step(9, "phase 4 -> 5 (DynamoDB only): needs measured DynamoDB reads and zero lag")
        with open_phase_controller(self.settings) as ctl:
            self.soak()
            results = ctl.check(5)
        self.gates_table(5, results)
        self.say(
            "  The client shim that would count the application's DynamoDB reads is not built yet, so the "
            "read gate has no evidence and refuses: the controller does not move on an assumption."
        )

    def _rollback(self) -> None:
        self.step(10, "emergency rollback straight to phase 1 (allowed from any phase)")
        self.change_phase(1, "demo: emergency rollback drill")
        with open_phase_controller(self.settings) as ctl:
            history = ctl.history()
        t = Table(title="audit history")
        for col in ("epoch", "actor", "from", "to", "reason", "forced gates"):
            t.add_column(col)
        for h in history:
            t.add_row(str(h.epoch), h.actor, str(h.from_phase), str(h.to_phase), h.reason,
                      ", ".join(h.forced_gates))
        self.console.print(t)
        self.say("[green]demo complete: DynamoDB matched MySQL row for row, "
                 "and every phase change is audited.")

    # ----------------------------------------------------------------- measuring and acting

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

    def writer_lag(self) -> int:
        topics = [table_topic(self.settings.kafka.topic_prefix, t.source) for t in self.settings.tables]
        lags = KafkaOffsetProbe(self.settings.kafka).topic_lags(self.settings.writer_group, topics)
        return sum(lags.values())

    def change_phase(self, target: int, reason: str, *, force: bool = False) -> None:
        with open_phase_controller(self.settings) as ctl:
            if target > ctl.get_state().phase:
                self.gates_table(target, ctl.check(target))
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

    def soak(self) -> None:
        deadline = time.monotonic() + self.opts.soak_s + 1
        with self.console.status(f"soaking for {self.opts.soak_s:.0f}s"):
            while time.monotonic() < deadline:
                time.sleep(0.5)

    def _stop_workload(self) -> int:
        """Halt the application's writes (once); returns how many changes it made."""
        w = self.workload
        if w is None:
            return 0
        w.halt()
        w.executor.close()
        if w.error is not None:
            self.say(f"[yellow]  the application stopped early: {w.error}")
        self.workload = None
        return w.done

    # ----------------------------------------------------------------- printing

    def say(self, text: str) -> None:
        self.console.print(text)

    def step(self, n: int, title: str) -> None:
        self.console.rule(f"[bold]{n}. {title}")

    def gates_table(self, target: int, results: list[GateResult]) -> None:
        t = Table(title=f"gates into phase {target}")
        for col in ("gate", "measured", "threshold", "verdict"):
            t.add_column(col)
        for r in results:
            t.add_row(r.gate, r.measured, r.threshold,
                      "[green]pass[/]" if r.passed else f"[red]fail[/] {r.detail}")
        self.console.print(t)

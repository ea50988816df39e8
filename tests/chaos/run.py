"""One run of the fault campaign: set up, start everything, apply the schedule, heal, drain, check.

A run has a namespace of its own (database, topics, tables, control keys: ``chaos<seed>_<hex>``)
and removes it at the end unless it failed (then its logs and resources stay for a look, and the
seed replays the schedule: ``CHAOS_SEED=<seed> CHAOS_RUNS=1 make chaos``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from replicator.adapters import mysql
from replicator.adapters.dynamodb import dynamo_errors, dynamodb_client
from replicator.demo.cleanup import remove_demo_resources
from replicator.errors import ReplicatorError
from replicator.phase import open_phase_controller
from replicator.settings import Settings, load_settings
from tests.chaos import checks, ledger
from tests.chaos.app import compared
from tests.chaos.pipeline import ROOT, Proc, Processes
from tests.chaos.proxies import DynamoFaultProxy, Toxiproxy
from tests.chaos.schedule import LINKS, REVERSE, Action, draw, next_phase
from tests.chaos.switch import Switches

SERVER_IDS = 7_500_000  # the runs' readers' server_ids: this plus a number from the run's id
START_WAIT_S = 90.0
DRAIN_DEADLINE_S = 240.0
BACKFILL_DEADLINE_S = 240.0
BIG_BLOB = 420 * 1024  # over DynamoDB's 400 KB item limit: the row must be dead-lettered
BACKFILL_BEFORE_SWITCH_S = 60.0  # how long a switch to phase 5 waits for the backfill to complete
MAX_WRITE_PAUSE_S = 5.0  # cutover.max_write_pause_s: the 4 <-> 5 switches on a loaded 2-core machine

SCHEMA = (
    """CREATE TABLE items (
         id BIGINT PRIMARY KEY, grp INT NOT NULL, name VARCHAR(64) NOT NULL, amount DECIMAL(12,2) NOT NULL,
         note TEXT NULL, at DATETIME(6) NULL, raw VARBINARY(16) NULL, KEY by_grp (grp))""",
    "CREATE TABLE blobs (id BIGINT PRIMARY KEY, data LONGBLOB NOT NULL)",
)


@dataclass
class RunResult:
    seed: int
    run_id: str
    faults: Counter[str] = field(default_factory=Counter)
    actions: Counter[str] = field(default_factory=Counter)
    switches: Counter[str] = field(default_factory=Counter)  # "4->5", "5->4", "4->5 aborted", ...
    phase5_writes: int = 0  # the application's phase-5 writes the version scans saw (a lower bound)
    rows_compared: int = 0
    lost: int = 0
    regressed: int = 0
    duplicated: int = 0
    problems: list[str] = field(default_factory=list)  # what failed, for the report
    notes: list[str] = field(default_factory=list)  # what happened, not a failure
    events: int = 0
    acknowledged: int = 0
    unknown: int = 0
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.regressed or self.duplicated or self.problems)

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "run_id": self.run_id, "ok": self.ok, "wall_s": round(self.wall_s, 1),
                "faults": dict(self.faults), "actions": dict(self.actions), "switches": dict(self.switches),
                "phase5_writes": self.phase5_writes,
                "rows_compared": self.rows_compared,
                "lost": self.lost, "regressed": self.regressed, "duplicated": self.duplicated,
                "events": self.events, "acknowledged_writes": self.acknowledged,
                "unknown_outcomes": self.unknown, "problems": self.problems, "notes": self.notes}


def run_settings(base: Settings, run_id: str, admin_user: str, admin_password: str) -> Settings:
    return load_settings(
        kafka={**base.kafka.model_dump(), "topic_prefix": run_id},
        dynamodb={**base.dynamodb.model_dump(), "table_prefix": f"{run_id}-", "streams": True},
        control={**base.control.model_dump(), "namespace": run_id},
        mysql={**base.mysql.model_dump(), "password": base.mysql.password.get_secret_value(),
               "server_id": SERVER_IDS + int(uuid.uuid5(uuid.NAMESPACE_DNS, run_id)) % 1_000_000},
        client={**base.client.model_dump(), "mysql_user": admin_user, "mysql_password": admin_password},
        cutover={**base.cutover.model_dump(), "fence_table": f"{run_id}.fence", "lease_ttl_s": 5.0,
                 "reverse_versions_table": f"{run_id}.reverse_versions",
                 "max_write_pause_s": MAX_WRITE_PAUSE_S},
        gates={**base.gates.model_dump(), "window_2_3_s": 0, "window_3_4_s": 0, "window_4_5_s": 0,
               "min_validations": 0},
        tables=[{"source": f"{run_id}.items", "target": "items",
                 "indexes": [{"name": "by_grp", "pk": "grp", "sk": "id"}]},
                {"source": f"{run_id}.blobs", "target": "blobs"}],
        log={**base.log.model_dump(), "level": "info"},
    )


class Run:
    def __init__(self, base: Settings, admin: tuple[str, str], seed: int, out_dir: Path,
                 stack_env: dict[str, str], say: Any, faults: tuple[int, int] = (3, 6)) -> None:
        self.seed, self.say, self.stack_env, self.faults = seed, say, stack_env, faults
        self.restarts = stack_env.get("STACK_KIND", "processes") == "processes"
        self.run_id = f"chaos{seed}_{uuid.uuid4().hex[:4]}"
        self.settings = run_settings(base, self.run_id, *admin)
        self.admin = self.settings.mysql.model_copy(
            update={"user": admin[0], "password": SecretStr(admin[1])})
        self.dir = out_dir / self.run_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ledger_path = self.dir / "ledger.jsonl"
        self.rng = random.Random(seed * 7919 + 1)
        self.switch_rng = random.Random(f"{seed}:phase5:run")  # phase 5's draws, apart from rng's
        self.result = RunResult(seed, self.run_id)
        self.phase = 1
        self.blobs_big: set[int] = set()
        self.blob_next = 1
        self.ddl_n = 0
        self.conn: Any = None
        self.switches = Switches(self.settings, self.admin, say)

    # ----------------------------------------------------------------- the run

    def run(self) -> RunResult:
        t0 = time.monotonic()
        toxi = Toxiproxy(self.dir / "toxiproxy.log")
        dynamo = DynamoFaultProxy(_port(self.settings.dynamodb.endpoint_url or ""), self.seed)
        watch = checks.VersionWatch(self.settings)
        procs = Processes(self.settings, toxi, dynamo, self.dir)
        try:
            toxi.start()
            dynamo.start()
            head = self._setup()
            self._start(procs, head)
            watch.start()
            for action in draw(self.seed, self.faults, restarts=self.restarts):
                self._act(action, procs, toxi, dynamo)
            self._heal(procs, toxi, dynamo)
            self._finish(procs, watch)
        except (ReplicatorError, OSError, TimeoutError, subprocess.SubprocessError) as exc:
            self.result.problems.append(f"the run could not go on: {type(exc).__name__}: {exc}")
        finally:
            with contextlib.suppress(TimeoutError):  # a switch still running when the run broke off
                self.switches.join()
            procs.stop_all()
            dynamo.stop()
            toxi.stop()
            if self.conn is not None:
                self.conn.close()
            self.result.switches.update(self.switches.counts)
            self.result.notes += self.switches.notes
            self.result.notes += [f"{name} exited by itself {n}x" for name, n in procs.exited.items()]
            self.result.notes += [f"{name} first exited after: {line}" for name, line in procs.why.items()]
            self.result.wall_s = time.monotonic() - t0
            (self.dir / "result.json").write_text(json.dumps(self.result.as_dict(), indent=2))
            if self.result.ok:
                failed = remove_demo_resources(self.settings, self.admin, self.run_id)
                if failed:
                    self.result.notes.append(f"cleanup incomplete: {failed}")
                shutil.rmtree(self.dir, ignore_errors=True)
        return self.result

    def _sql(self, sql: str, params: Any = None) -> None:
        """One statement on the runner's own connection (reconnects after a MariaDB restart)."""
        for attempt in range(30):
            try:
                if self.conn is None:
                    self.conn = mysql.connect(self.admin, database=self.run_id)
                with mysql.mysql_errors("chaos runner"), self.conn.cursor() as cur:
                    cur.execute(sql, params)
                return
            except ReplicatorError:
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 29:
                    raise
                time.sleep(1.0)

    def _setup(self) -> tuple[str, int]:
        conn = mysql.connect(self.admin)
        try:
            with mysql.mysql_errors("creating the run's database"), conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{self.run_id}`")
                cur.execute(f"USE `{self.run_id}`")
                for stmt in SCHEMA:
                    cur.execute(stmt)
                rows = self.rng.randint(50, 300)
                seeds = [(i, self.rng.randint(0, 9), f"seed{i}", f"{self.rng.randint(0, 10**6) / 100:.2f}")
                         for i in range(1, rows + 1)]
                cur.executemany("INSERT INTO items (id, grp, name, amount) VALUES (%s, %s, %s, %s)", seeds)
                for _ in range(self.rng.randint(2, 6)):
                    cur.execute("INSERT INTO blobs VALUES (%s, %s)", (self.blob_next, b"s" * 100))
                    self.blob_next += 1
                cur.execute("SHOW MASTER STATUS")
                head = cur.fetchone()
        finally:
            conn.close()
        w = ledger.LedgerWriter(self.ledger_path)
        for i, grp, name, amount in seeds:
            w.record("intent", i, {i: compared({"grp": grp, "name": name, "amount": amount})})
            w.record("ok", i)
        w.close()
        self.say(f"  {self.run_id}: {rows} rows before the stream; binlog head {head[0]}:{head[1]}")
        return str(head[0]), int(head[1])

    def _start(self, procs: Processes, head: tuple[str, int]) -> None:
        procs.add(Proc("reader", ["run", "--from", f"{head[0]}:{head[1]}"], LINKS["reader"],
                       restart_args=["run"]))
        procs.add(Proc("writer-a", ["write", "--create-tables", "--instance-id", "a"], LINKS["writer-a"]))
        self._wait("the writer to create the tables", lambda: self._tables_exist(), procs)
        procs.add(Proc("writer-b", ["write", "--instance-id", "b"], LINKS["writer-b"]))
        procs.add(Proc(REVERSE, ["reverse"], LINKS[REVERSE]))  # the tables have their streams now
        procs.add(Proc("validator", ["validate"], LINKS["validator"]))
        self._set_phase(2, "chaos: dual writes")
        procs.add(Proc("app", ["--ledger", str(self.ledger_path), "--table", f"{self.run_id}.items",
                               "--seed", str(self.seed)], LINKS["app"], app=True))
        procs.add(Proc("backfill", ["backfill", "--chunk-rows", "40", "--max-rows-per-s", "400",
                                    "--wait-timeout-s", "60", "--no-progress"], LINKS["backfill"],
                       done_codes=(0,)))

    def _tables_exist(self) -> bool:
        client = dynamodb_client(self.settings.dynamodb)
        try:
            with dynamo_errors("listing the tables"):
                names = client.list_tables()["TableNames"]
        except ReplicatorError:  # DynamoDB Local busy: asked again
            return False
        finally:
            client.close()
        return all(f"{self.settings.dynamodb.table_prefix}{t}" in names for t in ("items", "blobs"))

    def _wait(self, what: str, cond: Any, procs: Processes, timeout_s: float = START_WAIT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout_s:.0f} s for {what}; logs in {self.dir}")
            procs.supervise()
            time.sleep(0.5)

    # ----------------------------------------------------------------- actions

    def _act(self, a: Action, procs: Processes, toxi: Toxiproxy, dynamo: DynamoFaultProxy) -> None:
        self._sleep(a.gap_s, procs)
        (self.result.faults if a.is_fault else self.result.actions)[a.kind] += 1
        self.say(f"    {a.describe()}")
        with (self.dir / "schedule.log").open("a") as f:
            f.write(f"{time.time():.3f} {a.describe()}\n")
        if a.kind == "kill9":
            if procs.procs[a.target].finished:
                self.result.faults[a.kind] -= 1  # the backfill has finished: nothing to kill
                return
            procs.signal(a.target, signal.SIGKILL)
            self._sleep(a.hold_s, procs, supervise=False)
            procs.start(a.target)
        elif a.kind == "pause":
            if not procs.signal(a.target, signal.SIGSTOP):
                self.result.faults[a.kind] -= 1
                return
            self._sleep(a.hold_s, procs, supervise=False)
            procs.signal(a.target, signal.SIGCONT)
        elif a.kind.startswith("restart_"):
            self._restart_server(a.target)
        elif a.kind.startswith("dynamodb_"):
            dynamo.storm("throttle" if a.kind == "dynamodb_throttle" else "5xx", a.params["share"])
            self._sleep(a.hold_s, procs)
            dynamo.calm()
        elif a.kind.startswith("net_"):
            if a.kind == "net_cut":
                toxi.cut(a.target)
            elif a.kind == "net_blackhole":
                toxi.blackhole(a.target)
            else:
                toxi.slow(a.target, int(a.params["latency_ms"]), int(a.params["jitter_ms"]))
            self._sleep(a.hold_s, procs)
            toxi.heal(a.target)
        elif a.kind == "phase":
            self._join_switch()
            target = next_phase(self.rng, self.phase, self.switch_rng)
            self.say(f"      phase {self.phase} -> {target}")
            if target == 5 and not self._backfilled(procs):
                return
            if {self.phase, target} == {4, 5}:
                self.switches.start(self.phase, target)
                return
            self._set_phase(target, f"chaos: {self.phase} -> {target}")
            if target == 1:  # the writers pause in phase 1: back to dual writes soon
                self._sleep(self.rng.uniform(1.0, 4.0), procs)
                self._set_phase(2, "chaos: dual writes again")
        elif a.kind == "switch":
            self._join_switch()
            if a.target == "5" and self.phase < 5:
                if not self._backfilled(procs):
                    return
                for step in range(max(self.phase + 1, 2), 5):  # forward to 4, forced past the soak gates
                    self._set_phase(step, f"chaos: towards the switch ({step})")
                self.switches.start(4, 5)
            elif a.target == "4" and self.phase == 5:
                self.switches.start(5, 4)
            else:
                self.say(f"      nothing to switch in phase {self.phase}")
        elif a.kind == "ddl":
            self.ddl_n += 1
            self._sql(f"ALTER TABLE items ADD COLUMN extra{self.ddl_n} INT NULL")
        elif a.kind == "blob":
            self._sql("INSERT INTO blobs VALUES (%s, %s)", (self.blob_next, b"B" * BIG_BLOB))
            self.blobs_big.add(self.blob_next)
            self.blob_next += 1
        elif a.kind == "blob_small":
            if self.rng.random() < 0.6:
                data = b"s" * self.rng.randint(1, 999)
                self._sql("INSERT INTO blobs VALUES (%s, %s)", (self.blob_next, data))
                self.blob_next += 1
            else:
                small = [i for i in range(1, self.blob_next) if i not in self.blobs_big]
                if small:
                    self._sql("DELETE FROM blobs WHERE id = %s", (self.rng.choice(small),))

    def _sleep(self, seconds: float, procs: Processes, *, supervise: bool = True) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.5))
            if supervise:
                procs.supervise()

    def _backfilled(self, procs: Processes) -> bool:
        """Has the backfill completed (waited for, bounded)? Only then may writes move to
        DynamoDB: before, it lacks rows MySQL has, and the application's phase-5 updates and
        deletes of those rows find no item and change nothing, acknowledged all the same. The
        2 -> 3 gate checks it, and the campaign forces the gates, so it waits here; a switch it
        cannot wait for is skipped (counted ``4->5 skipped``)."""
        deadline = time.monotonic() + BACKFILL_BEFORE_SWITCH_S
        while not procs.procs["backfill"].finished:
            if time.monotonic() > deadline:
                self.switches.counts["4->5 skipped"] += 1
                self.result.notes.append(f"the backfill had not completed after "
                                         f"{BACKFILL_BEFORE_SWITCH_S:.0f} s: no switch to phase 5")
                return False
            procs.supervise()
            time.sleep(0.5)
        return True

    def _join_switch(self) -> None:
        """Wait for the switch in progress (if any) and take the phase it left."""
        phase = self.switches.join()
        if phase is not None:
            self.phase = phase

    def _restart_server(self, server: str) -> None:
        cmd = [sys.executable, str(ROOT / "scripts" / "stack.py"), "restart", server]
        with (self.dir / "stack.log").open("ab") as out:
            done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.stack_env,
                                  timeout=180, check=False)
        if done.returncode != 0:
            raise ReplicatorError(f"scripts/stack.py restart {server} failed (exit {done.returncode}); "
                                  f"see {self.dir / 'stack.log'}")

    def _set_phase(self, target: int, reason: str) -> None:
        for attempt in range(20):  # Redis may be restarting
            try:
                with open_phase_controller(self.settings) as ctl:
                    ctl.set_migration_phase(target, reason=reason, actor="chaos", force=True)
                self.phase = target
                return
            except ReplicatorError as exc:
                if attempt == 19:
                    raise
                self.say(f"      phase {target} not set yet: {exc}")
                time.sleep(1.0)

    # ----------------------------------------------------------------- the end

    def _heal(self, procs: Processes, toxi: Toxiproxy, dynamo: DynamoFaultProxy) -> None:
        dynamo.calm()
        toxi.heal_all()
        procs.resume_all()
        procs.supervise()
        self._join_switch()
        frozen = self.switches.frozen()
        if frozen is not None:
            raise ReplicatorError(f"the phase document is left frozen (no switch runs): {frozen}")
        if self.phase == 5:  # the checks need every phase-5 write in MySQL
            self.phase = self.switches.back_to_4(procs.supervise)
            if self.phase == 5:
                raise ReplicatorError("the run could not switch back from phase 5 to 4; see the notes "
                                      f"and {self.dir / 'reverse.log'}")
        if self.phase == 1:
            self._set_phase(2, "chaos: the writers apply the backlog")
        code = procs.stop("app")
        self.say(f"  healed; the application stopped (exit {code}); draining")
        self._wait("the backfill to finish", lambda: procs.procs["backfill"].finished, procs,
                   timeout_s=BACKFILL_DEADLINE_S)

    def _finish(self, procs: Processes, watch: checks.VersionWatch) -> None:
        r = self.result
        t0 = time.monotonic()
        result = checks.converge(self.settings, DRAIN_DEADLINE_S)
        r.notes.append(f"converged in {time.monotonic() - t0:.1f} s")
        watch.stop()
        r.rows_compared = result.rows
        r.lost += len(result.differences)
        r.problems += [f"lost: {d}" for d in checks.short(result.differences)]
        r.regressed = len(watch.regressions)
        r.phase5_writes = len(watch.app_writes)
        r.problems += [f"regressed: {x}" for x in watch.regressions[:5]]
        topics = checks.check_topics(self.settings)
        r.events = topics.events
        r.duplicated = len(topics.duplicated)
        r.problems += [f"duplicated: {x}" for x in topics.duplicated[:5]]
        r.problems += [f"out of order: {x}" for x in topics.out_of_order[:5]]
        if topics.snapshot_repeats:
            r.notes.append(f"{topics.snapshot_repeats} snapshot rows published again "
                           "(a backfill chunk redone)")
        letters, n_letters = checks.dead_lettered_ids(self.settings)
        wrong = sorted(x for x in letters if x[0] != "blobs" or x[1] not in self.blobs_big)
        r.problems += [f"dead letter for a mappable row: {t}.{i}" for t, i in wrong[:5]]
        missing = sorted(result.oversized - {i for t, i in letters if t == "blobs"})
        r.lost += len(missing)
        r.problems += [f"lost: blobs id={i} (too big) is in neither DynamoDB nor the dead-letter topic"
                       for i in missing[:5]]
        r.notes.append(f"{n_letters} dead letters for {len(result.oversized)} oversized rows")
        book = ledger.read(self.ledger_path)
        book.settle()
        r.acknowledged, r.unknown = book.acknowledged, book.unknown
        violations = book.violations(self._mysql_items())
        r.lost += len(violations)
        r.problems += [f"acknowledged write missing: {v}" for v in violations[:5]]
        if watch.errors:
            r.notes.append(f"{watch.errors} version scans failed (retried)")

    def _mysql_items(self) -> dict[int, ledger.State]:
        conn = mysql.connect(self.admin, database=self.run_id, dict_rows=True)
        try:
            with mysql.mysql_errors("reading the items"), conn.cursor() as cur:
                cur.execute("SELECT id, grp, name, amount FROM items")
                return {int(row["id"]): compared(row) for row in cur.fetchall()}
        finally:
            conn.close()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%H:%M:%S")

"""The campaign: runs one after the other, each reported, and the totals.

    python -m tests.chaos [--runs N] [--seed S] [--budget-s T] [--out DIR]

Defaults from ``CHAOS_RUNS`` (200), ``CHAOS_SEED`` (drawn and printed), ``CHAOS_BUDGET_S``
(6 h: no run starts after it) and ``CHAOS_OUT`` (``<STACK_DIR or .stack>/chaos``). Run ``i``
has seed ``S + i``; a failing seed replays its schedule with ``--runs 1 --seed <seed>``. The
endpoints come from the ``REPLICATOR_*`` variables of the stack's env file, the MySQL
administrator from ``STACK_MYSQL_ADMIN_USER`` / ``_PASSWORD``. Exit 0 when every run found
0 lost, 0 regressed, 0 duplicated and nothing else wrong; 1 otherwise; 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from replicator.errors import ReplicatorError
from replicator.health import run_probes
from replicator.logs import configure_logging
from replicator.settings import Settings, load_settings
from tests.chaos.pipeline import ROOT
from tests.chaos.proxies import ChaosSetupError
from tests.chaos.run import Run, RunResult, now


def summarize(results: list[RunResult], wall_s: float) -> dict[str, object]:
    faults: Counter[str] = Counter()
    switches: Counter[str] = Counter()
    for r in results:
        faults.update(r.faults)
        switches.update(r.switches)
    return {
        "runs": len(results), "failed_runs": [r.seed for r in results if not r.ok],
        "wall_s": round(wall_s, 1), "faults": dict(sorted(faults.items())),
        "faults_total": sum(faults.values()),
        "rows_compared": sum(r.rows_compared for r in results), "events": sum(r.events for r in results),
        "acknowledged_writes": sum(r.acknowledged for r in results),
        "lost": sum(r.lost for r in results), "regressed": sum(r.regressed for r in results),
        "duplicated": sum(r.duplicated for r in results),
        "switches": dict(sorted(switches.items())),
        "phase5_writes": sum(r.phase5_writes for r in results),
    }


# scripts/stack.py's own defaults: the servers it restarts without STACK_* variables (.stack's)
STACK_DEFAULT_PORTS = {"mysql": 13306, "redis": 16379, "kafka": 19092, "dynamodb": 18000}
_STACK_PORT_VARS = {"mysql": "STACK_MYSQL_PORT", "redis": "STACK_REDIS_PORT", "kafka": "STACK_KAFKA_PORT",
                    "dynamodb": "STACK_DYNAMODB_PORT"}


def endpoint_ports(mysql_port: int | str, kafka: str, dynamodb_url: str,
                   redis_url: str) -> dict[str, int | None]:
    """The port of each server, from its endpoint."""
    first = kafka.split(",")[0]
    return {"mysql": int(mysql_port), "redis": urlsplit(redis_url).port,
            "kafka": int(first.rsplit(":", 1)[1]) if ":" in first else None,
            "dynamodb": urlsplit(dynamodb_url).port}


def stack_mismatch(env: Mapping[str, str], base: Settings) -> str | None:
    """Why ``scripts/stack.py restart`` under ``env`` would restart other servers than those the
    run uses (``base``), or None. It restarts the stack of ``STACK_DIR`` (default ``.stack``) on
    the ``STACK_*_PORT`` ports (default .stack's): a stack's env file sets neither, so sourcing
    it alone points the runs at one stack and their restarts at another."""
    ours = endpoint_ports(base.mysql.port, base.kafka.bootstrap_servers, base.dynamodb.endpoint_url or "",
                          base.control.redis_url)
    restarted = {k: int(env.get(var) or STACK_DEFAULT_PORTS[k]) for k, var in _STACK_PORT_VARS.items()}
    stack_dir = Path(env.get("STACK_DIR") or ROOT / ".stack")
    differ = [f"{k} {ours[k]} vs {restarted[k]}" for k in ours if ours[k] != restarted[k]]
    env_file = stack_dir / "env"
    if not differ and env_file.exists():
        listed = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        try:
            theirs = endpoint_ports(*(listed[f"REPLICATOR_{k}"] for k in (
                "MYSQL__PORT", "KAFKA__BOOTSTRAP_SERVERS", "DYNAMODB__ENDPOINT_URL", "CONTROL__REDIS_URL")))
        except (KeyError, ValueError) as exc:
            return f"{env_file} does not list the stack's endpoints ({exc}): is STACK_DIR a stack directory?"
        differ = [f"{k} {ours[k]} vs {theirs[k]} in {env_file}" for k in ours if ours[k] != theirs[k]]
    if not differ:
        return None
    return (f"the servers scripts/stack.py would restart (STACK_DIR={stack_dir}, STACK_*_PORT) are not the "
            f"ones the REPLICATOR_* variables point to ({', '.join(differ)}): export the stack's STACK_DIR "
            "and STACK_*_PORT variables with its env file, or the runs' restart faults hit another stack")


def campaign(runs: int, seed: int, budget_s: float, out: Path, say: Any = print,
             faults: tuple[int, int] = (3, 6)) -> list[RunResult]:
    """``runs`` runs from ``seed`` (fewer if ``budget_s`` runs out first); their results. The
    endpoints and the MySQL administrator come from the environment (the stack's env file)."""
    base = load_settings()
    down = [f"{p.service} ({p.endpoint}): {p.detail}" for p in run_probes(base) if not p.ok]
    if down:
        raise ChaosSetupError("the stack does not answer: " + "; ".join(down)
                              + " -- start it (make stack-up) or export its REPLICATOR_* variables")
    env = dict(os.environ)
    if env.get("STACK_KIND", "processes") == "processes":  # the runs restart servers: which ones?
        wrong = stack_mismatch(env, base)
        if wrong:
            raise ChaosSetupError(wrong)
    admin = (env.get("STACK_MYSQL_ADMIN_USER", "admin"), env.get("STACK_MYSQL_ADMIN_PASSWORD", ""))
    out.mkdir(parents=True, exist_ok=True)
    results: list[RunResult] = []
    started = time.monotonic()
    for i in range(runs):
        if time.monotonic() - started > budget_s:
            print(f"[chaos] the budget of {budget_s:.0f} s is spent: {i} of {runs} runs done", flush=True)
            break
        print(f"[chaos] {now()} run {i + 1}/{runs} seed {seed + i}", flush=True)
        r = Run(base, admin, seed + i, out, env, say, faults).run()
        results.append(r)
        verdict = "ok" if r.ok else "FAILED"
        print(f"[chaos] run {i + 1} seed {r.seed} {verdict} in {r.wall_s:.0f} s: faults {dict(r.faults)}, "
              f"rows compared {r.rows_compared}, events {r.events}, acknowledged writes {r.acknowledged} "
              f"(unknown outcome {r.unknown}), lost {r.lost}, regressed {r.regressed}, duplicated "
              f"{r.duplicated}, switches {dict(r.switches)} (phase-5 writes seen {r.phase5_writes})",
              flush=True)
        for line in r.notes:
            print(f"[chaos]   note: {line}", flush=True)
        for line in r.problems:
            print(f"[chaos]   PROBLEM: {line}", flush=True)
        if not r.ok:
            print(f"[chaos]   kept for a look: {out / r.run_id}; replay: CHAOS_SEED={r.seed} CHAOS_RUNS=1 "
                  "make chaos", flush=True)
        with (out / "runs.jsonl").open("a") as f:
            f.write(json.dumps(r.as_dict()) + "\n")
    return results


def main(argv: list[str]) -> int:
    env = os.environ
    p = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=env.get("CHAOS_RUNS", "200"),
                   help="how many runs (CHAOS_RUNS, default 200)")
    p.add_argument("--seed", type=int, default=env.get("CHAOS_SEED") or None,
                   help="seed of the first run; run i has seed+i (CHAOS_SEED, default: drawn, printed)")
    p.add_argument("--budget-s", type=float, default=env.get("CHAOS_BUDGET_S", str(6 * 3600)),
                   help="no run starts after this many seconds (CHAOS_BUDGET_S, default 6 h)")
    p.add_argument("--out", type=Path, default=Path(env.get("CHAOS_OUT") or
                                                   Path(env.get("STACK_DIR") or ROOT / ".stack") / "chaos"),
                   help="results and the logs of failed runs (CHAOS_OUT, default <STACK_DIR>/chaos)")
    p.add_argument("--quiet", action="store_true", help="One line per run (not per action).")
    args = p.parse_args(argv)
    if args.runs < 1:
        p.error("--runs (CHAOS_RUNS) must be at least 1")
    seed = args.seed if args.seed is not None else secrets.randbelow(10**6)
    configure_logging(load_settings().log.model_copy(update={"level": "warning"}))
    print(f"[chaos] {args.runs} runs from seed {seed} "
          "(replay one: CHAOS_SEED=<seed> CHAOS_RUNS=1 make chaos); "
          f"results in {args.out}", flush=True)
    t0 = time.monotonic()
    try:
        results = campaign(args.runs, seed, args.budget_s, args.out,
                           (lambda _line: None) if args.quiet else print)
    except (ChaosSetupError, ReplicatorError) as exc:
        print(f"[chaos] cannot run: {exc}", file=sys.stderr)
        return 2
    total = summarize(results, time.monotonic() - t0)
    (args.out / f"summary-{seed}.json").write_text(json.dumps(total, indent=2))
    print(f"[chaos] total: {json.dumps(total)}", flush=True)
    return 0 if results and not total["failed_runs"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Run every ``bench/bench_*.py`` (or the ones named on the command line) and keep their reports.

Each module exposes ``main() -> dict``: it prints its own human-readable report and returns
the figures, which are written to ``bench/results/<name>.json``. Figures are ratios against a
baseline measured in the same run, never absolute timings compared with a constant.

No benchmark can hang the run: each waits with deadlines of its own (``bench/deadline.py``),
and each runs under a budget (its module's ``BUDGET_S``, default ``DEFAULT_BUDGET_S``) cut to
what is left of the whole run's ``BENCH_BUDGET_S`` (default 1,680 s: with the last benchmark's
clean-up grace and the stack's start, ``make bench`` finishes or fails within 30 minutes).
A benchmark past its budget fails with a message naming it; one that no time is left for fails
as not run.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

from bench.deadline import BenchTimeout, watchdog

HERE = Path(__file__).resolve().parent
DEFAULT_BUDGET_S = 300.0
MIN_BUDGET_S = 20.0  # less left than this: the benchmark is not started


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in HERE.glob("bench_*.py"))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    failed = 0
    run_deadline = time.monotonic() + float(os.environ.get("BENCH_BUDGET_S", "1680"))
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        t0 = time.monotonic()
        environ = dict(os.environ)  # some benchmarks set REPLICATOR_* for their processes
        try:
            module = importlib.import_module(f"bench.{name}")
            budget = min(float(getattr(module, "BUDGET_S", DEFAULT_BUDGET_S)), run_deadline - t0)
            if budget < MIN_BUDGET_S:
                raise BenchTimeout(f"not run: {max(0.0, run_deadline - t0):.0f} s left of BENCH_BUDGET_S")
            with watchdog(name, budget):
                figures = module.main()
        except Exception as exc:
            print(f"{name}: FAILED: {type(exc).__name__}: {exc}", flush=True)
            failed += 1
            continue
        finally:
            # ... which must not leak into the next one's settings (the environment wins over
            # what a benchmark passes to load_settings: another's topic prefix or namespace).
            os.environ.clear()
            os.environ.update(environ)
        figures["wall_seconds"] = round(time.monotonic() - t0, 1)
        (out / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
        print(json.dumps(figures, indent=2, default=str), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

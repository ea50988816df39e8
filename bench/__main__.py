"""Run every ``bench/bench_*.py`` (or the ones named on the command line) and keep their reports.

Each module exposes ``main() -> dict``: it prints its own human-readable report and returns
the figures, which are written to ``bench/results/<name>.json``. Figures are ratios against a
baseline measured in the same run, never absolute timings compared with a constant.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in HERE.glob("bench_*.py"))
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    failed = 0
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        t0 = time.monotonic()
        try:
            figures = importlib.import_module(f"bench.{name}").main()
        except Exception as exc:
            print(f"{name}: FAILED: {type(exc).__name__}: {exc}", flush=True)
            failed += 1
            continue
        figures["wall_seconds"] = round(time.monotonic() - t0, 1)
        (out / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
        print(json.dumps(figures, indent=2, default=str), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

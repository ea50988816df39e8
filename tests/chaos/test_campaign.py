"""The short fault campaign inside the suite: two runs of ``make chaos``'s campaign, fewer faults.

Each run starts the reader, two writers, the validator, the backfill, the reverse replication and
the application through the client, applies its seed's random faults (kill -9, SIGSTOP past the
session timeout, server restarts, DynamoDB throttling and 5xx storms, link cuts and latency) and
phase changes (most runs switch the write target to phase 5 and back), and checks the whole state.
The seed is printed; ``CHAOS_SEED`` replays it (``CHAOS_SEED=<seed> CHAOS_RUNS=1 make chaos``).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from tests.chaos.campaign import campaign, summarize
from tests.chaos.proxies import TOXIPROXY

pytestmark = pytest.mark.integration

RUNS = 2


def test_a_short_campaign_loses_regresses_and_duplicates_nothing(
        stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if not TOXIPROXY.exists():
        pytest.fail("toxiproxy is not built: `make tools` (scripts/tools.py toxiproxy) builds it",
                    pytrace=False)
    for key, value in stack_env.items():
        monkeypatch.setenv(key, value)
    seed = int(os.environ.get("CHAOS_SEED") or secrets.randbelow(10**6))
    print(f"chaos seed {seed}")
    results = campaign(RUNS, seed, budget_s=600, out=tmp_path, say=lambda _line: None, faults=(2, 3))
    total = summarize(results, 0.0)
    assert total["faults_total"], "no fault was injected"
    assert total["rows_compared"], "nothing was compared"
    failures = {r.seed: r.problems for r in results if not r.ok}
    assert not failures, f"seeds that failed (replay: CHAOS_SEED=<seed> CHAOS_RUNS=1 make chaos): {failures}"
    assert (total["lost"], total["regressed"], total["duplicated"]) == (0, 0, 0)
    kinds = {k.split(" ")[0] for k in total["switches"]}  # type: ignore[attr-defined]
    assert kinds <= {"4->5", "5->4"}, f"a switch other than 4 <-> 5: {total['switches']}"

"""The writer's own CPU per 1,000 applied items, against a bare boto3 conditional PutItem loop.

DynamoDB Local, not the writer, limits items/s on this machine (``bench_writer``), so this
measures what the writer costs: CPU seconds of this process (``time.process_time``: every
thread, librdkafka's included) per 1,000 items applied, in each apply mode:

- ``writer transact``: Kafka -> decode -> map -> coalesce -> ``TransactWriteItems`` of
  ``MAX_TRANSACT_ITEMS`` conditional puts -> offsets committed;
- ``writer put``: the same with one conditional ``PutItem`` per item;
- ``bare put`` (the baseline): the same items, mapped beforehand (not timed), sent as
  conditional ``PutItem`` (the writer's condition: ``attribute_not_exists(_version) OR
  _version < :v``) with boto3 alone, from as many threads as the writer's
  ``dynamodb.max_concurrency``.

Passes alternate the three (BENCH_WRITER_COST_PASSES, default 3; BENCH_WRITER_COST_ITEMS items
each, default 1,000); the median of each is reported with the ratios to the baseline (target
<= 1.2). With BENCH_WRITER_COST_PROFILE=1, a cProfile of one writer pass (its loop thread).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.bench_writer import Bench, _event, _row, _step_until
from consumers.writer.applier import ApplyMode
from consumers.writer.metrics import WriterMetrics
from consumers.writer.runner import WriterOptions
from consumers.writer.service import build_writer, close_writer, start_writer
from replicator.adapters.dynamodb import dynamodb_client
from replicator.control import HistoryEntry, PhaseState, open_control_store
from replicator.mapping.conditional import CONDITION, metadata
from replicator.mapping.names import VERSION_ATTR

ITEMS = int(os.environ.get("BENCH_WRITER_COST_ITEMS", "1000"))
PASSES = int(os.environ.get("BENCH_WRITER_COST_PASSES", "3"))
PROFILE = os.environ.get("BENCH_WRITER_COST_PROFILE") == "1"
TARGET = 1.2
BUDGET_S = 120 + PASSES * 3 * (60 + ITEMS / 20)  # bench/__main__.py's watchdog


class CostBench(Bench):
    """bench_writer's set-up (topic, tables, events), measured in CPU seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.next_key = 1_000_000
        # The baseline retries as a user's loop would: botocore's standard mode (DynamoDB Local
        # answers 500 "waiting for a lock" when busy); the writer retries those itself.
        self.bare_client = dynamodb_client(self.settings.dynamodb, attempts=10, read_timeout_s=30,
                                           pool_size=2 * self.settings.dynamodb.max_concurrency)

    def keys(self) -> range:
        first = self.next_key
        self.next_key += ITEMS + 100
        return range(first, first + ITEMS)

    def writer_cpu(self, mode: ApplyMode, profile: cProfile.Profile | None = None) -> tuple[float, float]:
        """(CPU seconds, wall seconds) of the writer applying ITEMS new items from Kafka."""
        keys = self.keys()
        with open_control_store(self.settings) as control:
            if not control.get_phase().dual_write_enabled:
                now = time.time()
                control.compare_and_set(PhaseState(2, 1, now, "bench", "bench"),
                                        HistoryEntry(1, now, "bench", 1, 2, "bench"))
            writer = build_writer(self.settings, control, mode=mode, client=self.client,
                                  metrics=WriterMetrics(), options=WriterOptions(max_batch=2000))
            start_writer(writer)
            try:
                base = writer.totals.events
                self.produce([_event(self.db, keys[0] - 1 - i, keys[0] - 1 - i) for i in range(50)])
                _step_until(writer, base + 50, f"the {mode} writer's 50 warm-up events")
                self.produce([_event(self.db, k, k) for k in keys])
                applied = writer.totals.applied
                if profile is not None:
                    profile.enable()
                cpu0, t0 = time.process_time(), time.perf_counter()
                _step_until(writer, base + 50 + ITEMS, f"the {mode} writer to apply {ITEMS} events")
                cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
                if profile is not None:
                    profile.disable()
                if writer.totals.applied - applied != ITEMS:
                    raise RuntimeError(f"the {mode} writer applied {writer.totals.applied - applied} of "
                                       f"{ITEMS} new items (replays or dead letters in a clean run?)")
                return cpu, wall
            finally:
                close_writer(writer)

    def bare_cpu(self, table: str) -> tuple[float, float]:
        """(CPU seconds, wall seconds) of boto3 alone sending the same conditional puts."""
        keys = self.keys()
        warm_up = range(keys[-1] + 1, keys[-1] + 51)  # within keys()'s slack

        def params(k: int) -> dict[str, Any]:
            return {"TableName": table,
                    "Item": self.mapper.to_item(_row(k, 0), metadata=metadata(k, "cdc")),
                    "ConditionExpression": CONDITION,
                    "ExpressionAttributeNames": {"#v": VERSION_ATTR},
                    "ExpressionAttributeValues": {":v": {"N": str(k)}}}

        def put(p: dict[str, Any]) -> None:
            self.bare_client.put_item(**p)

        timed = [params(k) for k in keys]
        with ThreadPoolExecutor(self.settings.dynamodb.max_concurrency) as pool:
            list(pool.map(put, [params(k) for k in warm_up]))  # connections, botocore's caches
            cpu0, t0 = time.process_time(), time.perf_counter()
            list(pool.map(put, timed))
            return time.process_time() - cpu0, time.perf_counter() - t0


def main() -> dict[str, Any]:
    b = CostBench()
    runs: dict[str, list[float]] = {"bare": [], "transact": [], "put": []}
    walls: dict[str, list[float]] = {k: [] for k in runs}
    profile = cProfile.Profile() if PROFILE else None
    try:
        b.topics()
        b.table("users")  # the writer's target
        bare_table = b.table("bare")
        for p in range(PASSES):
            order = ["bare", "transact", "put"]
            for name in order[p % 3:] + order[:p % 3]:
                if name == "bare":
                    cpu, wall = b.bare_cpu(bare_table)
                else:
                    mode: ApplyMode = "transact" if name == "transact" else "put"
                    cpu, wall = b.writer_cpu(mode, profile if p == 0 and name == "transact" else None)
                runs[name].append(cpu * 1000 / ITEMS)
                walls[name].append(ITEMS / wall)
                print(f"pass {p} {name:>8}: {cpu * 1000 / ITEMS:.3f} CPU-s per 1,000 items "
                      f"({ITEMS / wall:.0f} items/s)", flush=True)
    finally:
        b.cleanup()
    if profile is not None:
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())
    return _report(runs, walls, b.settings.dynamodb.max_concurrency)


def _report(runs: dict[str, list[float]], walls: dict[str, list[float]], threads: int) -> dict[str, Any]:
    med = {k: statistics.median(v) for k, v in runs.items()}
    figures: dict[str, Any] = {
        "items_per_pass": ITEMS, "passes": PASSES, "threads": threads, "target_ratio": TARGET,
        "bare_put_cpu_s_per_1000": round(med["bare"], 4),
    }
    print(f"CPU seconds per 1,000 items (median of {PASSES}): bare boto3 PutItem {med['bare']:.3f}")
    for mode in ("transact", "put"):
        ratio = med[mode] / med["bare"]
        figures[f"writer_{mode}_cpu_s_per_1000"] = round(med[mode], 4)
        figures[f"ratio_{mode}_to_bare"] = round(ratio, 3)
        figures[f"writer_{mode}_items_per_s"] = round(statistics.median(walls[mode]))
        print(f"  writer {mode:>8}: {med[mode]:.3f}  ratio {ratio:.2f} "
              f"(target <= {TARGET}: {'met' if ratio <= TARGET else 'NOT met'})")
    figures["bare_put_items_per_s"] = round(statistics.median(walls["bare"]))
    return figures

"""Phase watcher latency on both control stores: from the start of a change to its delivery.

Baseline, measured in the same run: the change itself (CAS write + history append). The
contract is delivery within 1 s; Redis wakes on pub/sub, DynamoDB is polled every 0.2 s.
"""

from __future__ import annotations

import queue
import statistics
import time
import uuid
from typing import Any

from replicator.adapters.dynamodb import dynamodb_client
from replicator.adapters.redis import redis_client
from replicator.control import PhaseState, control_table_name, open_control_store
from replicator.logs import configure_logging
from replicator.phase import PhaseController, PhaseWatcher
from replicator.phase.gates import GateResult
from replicator.settings import LogSettings, Settings, load_settings

CHANGES = 40


class _NoGates:
    def check(self, target: int, state: PhaseState | None = None) -> list[GateResult]:
        return []


def _pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]


def _measure(settings: Settings) -> dict[str, Any]:
    seen: queue.Queue[tuple[float, PhaseState]] = queue.Queue()
    delivery, write = [], []
    with open_control_store(settings) as own, \
            PhaseWatcher(own, lambda s: seen.put((time.perf_counter(), s))), \
            open_control_store(settings) as store:
        ctl = PhaseController(store, _NoGates())
        for i in range(CHANGES):
            target = 2 if i % 2 == 0 else 1
            t0 = time.perf_counter()
            ctl.set_migration_phase(target, reason="bench", actor="bench")
            write.append(time.perf_counter() - t0)
            at, state = seen.get(timeout=10)
            assert state.phase == target
            delivery.append(at - t0)
            time.sleep(0.05)
    return {
        "write_p50_ms": round(statistics.median(write) * 1000, 2),
        "delivery_p50_ms": round(statistics.median(delivery) * 1000, 2),
        "delivery_p99_ms": round(_pct(delivery, 0.99) * 1000, 2),
        "delivery_max_ms": round(max(delivery) * 1000, 2),
        "delivery_over_write_p50": round(statistics.median(delivery) / statistics.median(write), 2),
        "within_1s": sum(d < 1.0 for d in delivery) / len(delivery),
    }


def main() -> dict[str, Any]:
    configure_logging(LogSettings(level="warning"))  # one "Migration phase" line per change otherwise
    ns = "benchphase" + uuid.uuid4().hex[:8]
    base = load_settings()
    figures: dict[str, Any] = {"changes": CHANGES}
    for backend in ("redis", "dynamodb"):
        s = base.model_copy(update={
            "control": base.control.model_copy(update={"backend": backend, "namespace": ns}),
            "dynamodb": base.dynamodb.model_copy(update={"table_prefix": f"{ns}-"}),
        })
        try:
            figures[backend] = _measure(s)
        finally:
            _cleanup(s, ns)
        print(f"{backend}: {figures[backend]}")
    return figures


def _cleanup(s: Settings, ns: str) -> None:
    if s.control.backend == "redis":
        r = redis_client(s.control.redis_url)
        keys = list(r.scan_iter(match=f"{ns}:*"))
        if keys:
            r.delete(*keys)
        r.close()
    else:
        dynamodb_client(s.dynamodb).delete_table(TableName=control_table_name(s))

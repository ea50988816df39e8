"""Gate arithmetic: each forward transition's success criteria as pure functions of measured values.

The probes (:mod:`replicator.phase.probes`) read the stores and Kafka; these functions only judge.
Ratios are compared exactly (``Fraction``), so the guide's boundaries hold to the unit: a
dual-write success of exactly 99 % passes (>=), a validation error rate of exactly 0.1 % fails (<).

No evidence is not success: a window with no dual writes, no validations or no DynamoDB reads
fails its gate with a reason saying so, instead of passing vacuously on 0/0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

# Gate names (stable: they appear in history entries as forced gates and in --json output).
TABLES_EXIST = "dynamodb_tables_exist"
WRITER_CONNECTED = "writer_connected"
SOAK_TIME = "soak_time"
DUAL_WRITE_SUCCESS = "dual_write_success"
BACKFILL_COMPLETE = "backfill_complete"
VALIDATION_ERROR_RATE = "validation_error_rate"
DYNAMODB_READ_ERRORS = "dynamodb_read_error_rate"
REPLICATION_LAG = "replication_lag_zero"

GATES_FOR: dict[int, tuple[str, ...]] = {
    2: (TABLES_EXIST, WRITER_CONNECTED),
    3: (SOAK_TIME, DUAL_WRITE_SUCCESS, BACKFILL_COMPLETE),
    4: (SOAK_TIME, VALIDATION_ERROR_RATE),
    5: (SOAK_TIME, DYNAMODB_READ_ERRORS, REPLICATION_LAG),
}


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    measured: str        # what was seen, for people
    threshold: str       # what is required
    window_s: float | None
    detail: str = ""     # why it failed, and what to do
    value: float | None = None  # the measured number, for machines

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)


def _fail(gate: str, measured: str, threshold: str, detail: str, window_s: float | None = None) -> GateResult:
    return GateResult(gate, False, measured=measured, threshold=threshold, window_s=window_s, detail=detail)


def _pct(x: Fraction | float) -> str:
    return f"{float(x) * 100:.4g} %"


def soak_time(now: float, phase_since: float, window_s: float, phase: int) -> GateResult:
    """The current phase has run for the whole window (the guide's "for 24 hours")."""
    ran = max(0.0, now - phase_since)
    ok = ran >= window_s
    return GateResult(
        SOAK_TIME, ok, measured=f"phase {phase} for {ran:.0f} s", threshold=f">= {window_s:.0f} s",
        window_s=window_s, value=ran,
        detail="" if ok else f"phase {phase} must run {window_s - ran:.0f} s more before moving on",
    )


def _named(letters: Sequence[Mapping[str, Any]]) -> str:
    """Recent dead letters, newest first, as the gate's detail names them."""
    shown = [f"{d.get('table')} {d.get('key')} ({d.get('reason')})" for d in list(letters)[::-1][:5]]
    more = f" and {len(letters) - 5} more" if len(letters) > 5 else ""
    return "; dead letters: " + ", ".join(shown) + more if shown else ""


def dual_write_success(applied: int, failed: int, min_success: float, window_s: float,
                       letters: Sequence[Mapping[str, Any]] = ()) -> GateResult:
    total = applied + failed
    threshold = f">= {_pct(min_success)}"
    if total == 0:
        return GateResult(
            DUAL_WRITE_SUCCESS, False, measured="no dual writes", threshold=threshold, window_s=window_s,
            detail="no DynamoDB writes were counted in the window: the success rate is unknown, not 100 %; "
                   "check that `replicator write` runs and the application writes",
        )
    rate = Fraction(applied, total)
    ok = rate >= Fraction(str(min_success))
    return GateResult(
        DUAL_WRITE_SUCCESS, ok, measured=f"{_pct(rate)} ({applied}/{total})", threshold=threshold,
        window_s=window_s, value=float(rate),
        detail=(f"{failed} DynamoDB writes failed in the window (see the DualWrite logs and the "
                f"dead-letter topic){_named(letters)}" if failed else ""),
    )


def _error_rate(
    gate: str, what: str, good: int, bad: int, max_rate: float, window_s: float, min_total: int,
) -> GateResult:
    total = good + bad
    threshold = f"< {_pct(max_rate)}, at least {max(1, min_total)} {what}"
    if total < max(1, min_total):
        return GateResult(
            gate, False, measured=f"{total} {what}", threshold=threshold, window_s=window_s, value=None,
            detail=f"only {total} {what} in the window, {max(1, min_total)} needed to judge the error rate",
        )
    rate = Fraction(bad, total)
    ok = rate < Fraction(str(max_rate))
    return GateResult(
        gate, ok, measured=f"{_pct(rate)} ({bad}/{total} failed)", threshold=threshold, window_s=window_s,
        value=float(rate), detail="" if ok else f"{bad} of {total} {what} failed in the window",
    )


def validation_error_rate(
    passed: int, failed: int, max_rate: float, window_s: float, min_validations: int,
) -> GateResult:
    return _error_rate(
        VALIDATION_ERROR_RATE, "validations", passed, failed, max_rate, window_s, min_validations,
    )


def dynamodb_read_errors(ok: int, failed: int, max_rate: float, window_s: float) -> GateResult:
    return _error_rate(DYNAMODB_READ_ERRORS, "DynamoDB reads", ok, failed, max_rate, window_s, 1)


def tables_exist(expected: list[str], missing: list[str]) -> GateResult:
    threshold = "every mapped table exists"
    if not expected:
        return _fail(TABLES_EXIST, "no tables mapped", threshold,
                     "settings.tables is empty: map at least one table")
    ok = not missing
    present = len(expected) - len(missing)
    return GateResult(
        TABLES_EXIST, ok, measured=f"{present}/{len(expected)} exist", threshold=threshold,
        window_s=None, value=float(present),
        detail="" if ok else f"missing tables: {', '.join(missing)} (create them or run the writer)",
    )


def heartbeat_age(doc: Mapping[str, Any] | None, now: float) -> float | None:
    if not doc or not isinstance(doc.get("ts"), int | float):
        return None
    return max(0.0, now - float(doc["ts"]))


def writer_connected(doc: Mapping[str, Any] | None, now: float, max_age_s: float) -> GateResult:
    age = heartbeat_age(doc, now)
    threshold = f"heartbeat younger than {max_age_s:.0f} s"
    if age is None:
        return _fail(WRITER_CONNECTED, "no heartbeat", threshold,
                     "the DynamoDB writer has never reported: start `replicator write`")
    ok = age <= max_age_s
    return GateResult(
        WRITER_CONNECTED, ok, measured=f"heartbeat {age:.0f} s old", threshold=threshold, window_s=None,
        value=age, detail="" if ok else "the DynamoDB writer stopped reporting: is `replicator write` up?",
    )


def backfill_complete(doc: Mapping[str, Any] | None, mapped: list[str]) -> GateResult:
    threshold = "backfill.complete marker, covering every mapped table"
    if not doc or doc.get("complete") is not True:
        return _fail(BACKFILL_COMPLETE, "not complete", threshold,
                     "the backfill has not finished: run `replicator backfill` to completion")
    covered = doc.get("tables")
    missing = [t for t in mapped if isinstance(covered, list) and t not in covered]
    ok = not missing
    return GateResult(
        BACKFILL_COMPLETE, ok, measured="complete" if ok else f"complete without {', '.join(missing)}",
        threshold=threshold, window_s=None,
        detail="" if ok else "tables were mapped after the backfill ran: backfill them too",
    )


def replication_lag_zero(
    reader: Mapping[str, Any] | None, now: float, max_age_s: float,
    topic_lags: Mapping[str, int] | None, kafka_error: str = "",
    *, max_lag_s: float = 0.0, max_behind: int = 0,
    writer_events_per_s: float | None = None, max_drain_s: float | None = None,
) -> GateResult:
    """The binlog reader is (nearly) caught up AND the writer group has (nearly) consumed every
    table topic.

    With the defaults the lag must be exactly zero. While the application writes, it never is
    for long, so the 4 -> 5 gate is judged with a small allowance (``cutover.gate_max_lag_s``,
    ``cutover.gate_max_messages_behind``): the switch protocol then drains the lag to exactly
    zero at the fence, under the write freeze, which is when "zero lag before DynamoDB becomes
    the only write target" (DESIGN §1) is true and checked. With the writer's recent throughput
    (``writer_events_per_s``, from its heartbeat) and ``max_drain_s``, the backlog must also
    drain within that time at that pace: a slow writer makes the switch abort otherwise.
    """
    if max_lag_s or max_behind:
        drain = f", drained at its pace within {max_drain_s:g} s" if max_drain_s is not None else ""
        threshold = (f"reader lag <= {max_lag_s:g} s (fresh heartbeat) and writer <= {max_behind} messages "
                     f"behind{drain}; drained to zero under the switch's write freeze")
    else:
        threshold = "reader lag 0 s (fresh heartbeat) and writer offsets at the high watermarks"
    age = heartbeat_age(reader, now)
    if reader is None or age is None:
        return _fail(REPLICATION_LAG, "no reader heartbeat", threshold,
                     "the binlog reader has never reported: start `replicator run`")
    if age > max_age_s:
        return _fail(REPLICATION_LAG, f"reader heartbeat {age:.0f} s old", threshold,
                     "the binlog reader stopped reporting: is `replicator run` running?")
    lag_s = reader.get("lag_s")
    if not isinstance(lag_s, (int, float)) or lag_s > max_lag_s:
        return _fail(REPLICATION_LAG, f"reader lag {lag_s!r} s", threshold,
                     "the binlog reader is behind MySQL")
    if topic_lags is None:
        return _fail(REPLICATION_LAG, "writer offsets unknown", threshold,
                     f"could not read the writer's offsets: {kafka_error}")
    behind = {t: n for t, n in sorted(topic_lags.items()) if n != 0}
    total = sum(behind.values())
    ok = total <= max_behind
    if ok and total and max_drain_s is not None:
        drain_s = total / writer_events_per_s if writer_events_per_s else float("inf")
        if drain_s > max_drain_s:
            pace = f"{writer_events_per_s:g} events/s" if writer_events_per_s else "no measured pace"
            return _fail(REPLICATION_LAG, f"writer {total} messages behind, ~{drain_s:.1f} s to drain at "
                                          f"{pace}", threshold,
                         f"the writer would not drain its backlog within {max_drain_s:g} s of the switch's "
                         "pause: wait for it to catch up")
    return GateResult(
        REPLICATION_LAG, ok, measured=f"writer {total} messages behind", threshold=threshold, window_s=None,
        value=float(total),
        detail="" if ok else "writer behind on " + ", ".join(f"{t} ({n})" for t, n in behind.items()),
    )

"""The figures of ``replicator status``: one JSON-able document read from what already exists.

Sources: the control store (phase document, gate counters, markers: heartbeats, backfill
progress, client leases, the switch's progress, validators), Kafka (consumer-group offsets
against the watermarks, the dead-letter topic) and, when given, the processes' ``/metrics``.
Nothing is written. Each source that fails leaves its part of the document with an ``error``
and the rest still shows.

Rates come from the control store's per-minute counters: the count since the start of the
minute ``rate_window_s`` ago, divided by the time since then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from replicator.control import ControlStore, PhaseState, names
from replicator.control.state import BUCKET_S, bucket_of
from replicator.errors import ReplicatorError
from replicator.phase import gates as gate_rules
from replicator.phase.gates import GateResult, heartbeat_age, soak_time
from replicator.phase.switch import LEASE_PREFIX, PROGRESS_MARKER
from replicator.settings import Settings
from replicator.status.sources import OffsetSource
from replicator.topics import dead_letter_topic, table_topic

Doc = dict[str, Any]
GateCheck = Callable[[int, PhaseState], list[GateResult]]


def _ratio(bad: int, good: int) -> float | None:
    return None if good + bad == 0 else bad / (good + bad)


def rates(store: ControlStore, now: float, window_s: float) -> Doc:
    """Per-second rates and error rates of the gate counters over about the last ``window_s``."""
    since = bucket_of(now - window_s) * BUCKET_S
    span = max(now - since, 1.0)
    sums = {name: store.window_sum(name, since, now) for name in names.COUNTERS}
    per_s = {name: sums[name] / span for name in names.COUNTERS}
    failed = _ratio(sums[names.DUAL_WRITE_FAILED], sums[names.DUAL_WRITE_APPLIED])
    return {
        "window_s": round(span, 1),
        "dual_write": {"applied_per_s": per_s[names.DUAL_WRITE_APPLIED],
                       "failed_per_s": per_s[names.DUAL_WRITE_FAILED],
                       "success_rate": None if failed is None else 1 - failed},
        "validation": {"passed_per_s": per_s[names.VALIDATION_PASSED],
                       "failed_per_s": per_s[names.VALIDATION_FAILED],
                       "error_rate": _ratio(sums[names.VALIDATION_FAILED], sums[names.VALIDATION_PASSED])},
        "dynamodb_reads": {"ok_per_s": per_s[names.DYNAMODB_READ_OK],
                           "failed_per_s": per_s[names.DYNAMODB_READ_FAILED],
                           "error_rate": _ratio(sums[names.DYNAMODB_READ_FAILED],
                                                sums[names.DYNAMODB_READ_OK])},
        "counts": sums,
    }


def gate_doc(state: PhaseState, check: GateCheck, settings: Settings, now: float) -> Doc:
    """The gates of the next forward step (phase 5: the soak before MySQL is retired)."""
    if state.phase < 5:
        results = check(state.phase + 1, state)
        target: int | None = state.phase + 1
    else:
        results = [soak_time(now, state.updated_at, settings.gates.window_5_final_s, 5)]
        target = None
    docs = []
    for r in results:
        d = r.to_doc()
        if r.gate == gate_rules.SOAK_TIME and r.window_s is not None and r.value is not None:
            d["remaining_s"] = max(0.0, r.window_s - r.value)
        docs.append(d)
    return {"next_phase": target, "ready": all(r.passed for r in results), "results": docs}


def _heartbeat(doc: Doc | None, now: float, max_age_s: float) -> Doc:
    age = heartbeat_age(doc, now)
    out: Doc = {"alive": age is not None and age <= max_age_s, "heartbeat_age_s": age}
    for k, v in (doc or {}).items():
        if k != "ts":
            out[k] = v
    return out


def clients(leases: dict[str, Doc], now: float) -> list[Doc]:
    out = []
    for name, d in sorted(leases.items()):
        expires = float(d.get("expires_at", 0))
        out.append({"id": name[len(LEASE_PREFIX):], "name": d.get("name"), "host": d.get("host"),
                    "pid": d.get("pid"), "phase": d.get("phase"), "acked_epoch": d.get("acked_epoch"),
                    "live": expires > now, "expires_in_s": round(expires - now, 1)})
    return out


def kafka_doc(offsets: OffsetSource, settings: Settings) -> Doc:
    prefix = settings.kafka.topic_prefix
    by_topic = {table_topic(prefix, t.source): t.source for t in settings.tables}
    dlq = dead_letter_topic(prefix)
    groups = [settings.writer_group, settings.validator_group]
    try:
        got = offsets.offsets([*by_topic, dlq], groups)
    except ReplicatorError as exc:
        return {"error": str(exc), "tables": {}, "dead_letters": None}
    tables = {}
    for topic, source in by_topic.items():
        o = got.get(topic)
        tables[source] = {"topic": topic, "exists": o is not None,
                          "messages": o.messages if o else 0,
                          "writer_lag": o.behind.get(settings.writer_group) if o else None,
                          "validator_lag": o.behind.get(settings.validator_group) if o else None}
    dead = got.get(dlq)
    return {"error": "", "tables": tables, "dead_letters": dead.messages if dead else 0}


def gather(settings: Settings, store: ControlStore, offsets: OffsetSource, check: GateCheck, now: float, *,
           scrape: Callable[[str], Doc] | None = None, metrics_urls: Sequence[str] = (),
           rate_window_s: float = 300.0) -> Doc:
    """Every figure of the status screen (see the module docstring)."""
    max_age = settings.gates.heartbeat_max_age_s
    doc: Doc = {"at": now, "namespace": settings.namespace, "backend": settings.control.backend}
    try:
        state = store.get_phase()
        markers = store.list_markers("")
    except ReplicatorError as exc:
        doc["error"] = f"control store: {exc}"
        doc["kafka"] = kafka_doc(offsets, settings)
        return doc
    doc["phase"] = {"phase": state.phase, "name": state.name, "flags": state.flags(), "epoch": state.epoch,
                    "updated_at": state.updated_at, "updated_by": state.updated_by, "reason": state.reason,
                    "generation": state.generation,
                    "freeze": None if state.freeze is None else state.freeze.to_doc()}
    try:
        doc["gates"] = gate_doc(state, check, settings, now)
    except ReplicatorError as exc:
        doc["gates"] = {"error": str(exc)}
    doc["rates"] = rates(store, now, rate_window_s)
    doc["reader"] = _heartbeat(markers.get(names.READER_HEARTBEAT), now, max_age)
    doc["writer"] = _heartbeat(markers.get(names.WRITER_HEARTBEAT), now, max_age)
    doc["validators"] = [{"member": n[len(names.VALIDATOR_PREFIX):], **_heartbeat(d, now, max_age)}
                         for n, d in sorted(markers.items()) if n.startswith(names.VALIDATOR_PREFIX)]
    doc["reverse"] = (_heartbeat(markers[names.REVERSE_HEARTBEAT], now, max_age)
                      if names.REVERSE_HEARTBEAT in markers else None)
    doc["backfill"] = {
        n[len(names.BACKFILL_PREFIX):]: d for n, d in sorted(markers.items())
        if n.startswith(names.BACKFILL_PREFIX) and n != names.BACKFILL_COMPLETE}
    doc["backfill_complete"] = markers.get(names.BACKFILL_COMPLETE)
    doc["reconcile"] = {n[len(names.RECONCILE_PREFIX):]: d for n, d in sorted(markers.items())
                        if n.startswith(names.RECONCILE_PREFIX)}
    doc["clients"] = clients({n: d for n, d in markers.items() if n.startswith(LEASE_PREFIX)}, now)
    doc["switch"] = markers.get(PROGRESS_MARKER)
    doc["kafka"] = kafka_doc(offsets, settings)
    if metrics_urls and scrape is not None:
        doc["metrics"] = {url: scrape(url) for url in metrics_urls}
    return doc

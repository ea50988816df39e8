"""How the demo shows what it measured: tables and one-line summaries on a rich console."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from replicator.control import HistoryEntry
from replicator.demo.app import ClientFigures, LoadFigures, PhaseVisit
from replicator.phase.gates import GateResult


def visit_line(v: PhaseVisit | None, phase: int) -> str:
    """One phase visit as the application's users saw it."""
    if v is None:
        return f"  the shop in phase {phase}: no requests answered yet"
    errors = f"[green]{v.errors} errors[/]" if not v.errors else f"[red]{v.errors} errors[/]"
    return (f"  the shop in phase {phase}: {v.requests} requests ({v.reads} reads, {v.writes} writes), "
            f"{errors}, latency p50 {v.p50_ms:.1f} ms, p99 {v.p99_ms:.1f} ms")


def load_table(console: Console, figures: LoadFigures) -> None:
    t = Table(title="the shop's users, per phase visited (load generator)")
    for col in ("phase", "epoch", "requests", "reads", "writes", "404", "errors", "p50 ms", "p99 ms",
                "longest write ms"):
        t.add_column(col, justify="right")
    for v in figures.visits:
        t.add_row(str(v.phase or "?"), str(v.epoch), str(v.requests), str(v.reads), str(v.writes),
                  str(v.misses), "[green]0[/]" if not v.errors else f"[red]{v.errors}[/]",
                  f"{v.p50_ms:.1f}", f"{v.p99_ms:.1f}", f"{v.longest_write_ms:.0f}")
    console.print(t)
    for v in figures.visits:
        for sample in v.error_samples:
            console.print(f"  [red]phase {v.phase} error[/]: {sample}")


def validations_lines(client: ClientFigures, passed: int, failed: int) -> list[str]:
    v = client.validations
    return [
        f"  the client compared its phase-3 reads: {v.get('passed', 0)} validations passed, "
        f"{v.get('failed', 0)} failed, {v.get('unverified', 0)} unverified "
        "(replicator_client_validations_total)",
        f"  counted for the gate in the control store: validation.passed={passed}, "
        f"validation.failed={failed}",
    ]


def reads_lines(phase4: ClientFigures) -> list[str]:
    ops = ", ".join(f"{op} {n}" for (store, op), n in sorted(phase4.reads.items())
                    if store == "dynamodb" and n)
    falls = ", ".join(f"{reason} {n}" for reason, n in sorted(phase4.fallbacks.items()) if n) or "none"
    return [
        f"  reads served in phase 4 (replicator_client_read_seconds count by store): "
        f"dynamodb {phase4.reads_from('dynamodb')} ({ops or 'none'}), mysql {phase4.reads_from('mysql')}",
        f"  of which served by MySQL as a fallback: {falls}",
    ]


def gates_table(console: Console, target: int, results: Sequence[GateResult]) -> None:
    t = Table(title=f"gates into phase {target}")
    for col in ("gate", "measured", "threshold", "verdict"):
        t.add_column(col)
    for r in results:
        t.add_row(r.gate, r.measured, r.threshold,
                  "[green]pass[/]" if r.passed else f"[red]fail[/] {r.detail}")
    console.print(t)


def history_table(console: Console, history: Sequence[HistoryEntry]) -> None:
    t = Table(title="audit history")
    for col in ("epoch", "actor", "from", "to", "reason", "forced gates"):
        t.add_column(col)
    for h in history:
        t.add_row(str(h.epoch), h.actor, str(h.from_phase), str(h.to_phase), h.reason,
                  ", ".join(h.forced_gates))
    console.print(t)


def switch_lines(details: dict[str, object], pause_s: float | None) -> list[str]:
    """One switch of the write target, from its audit entry: the steps and their timings."""
    steps = details.get("steps") or {}
    assert isinstance(steps, dict)
    timings = ", ".join(f"{name} {float(sec) * 1000:.0f} ms" for name, sec in steps.items())
    clients = details.get("clients") or []
    assert isinstance(clients, list)
    head = f"  the protocol's steps: {timings}" if timings else "  the protocol's steps: (not recorded)"
    lines = [head, f"  clients that acknowledged the freeze: {', '.join(map(str, clients)) or 'none'}; "
                   f"generation of versions now {details.get('generation', '?')}"]
    if pause_s is not None:
        lines.append(f"  writes were frozen for {pause_s * 1000:.0f} ms (freeze to flip)")
    return lines

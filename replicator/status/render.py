"""One frame of ``replicator status`` as rich renderables, from the figures document (pure)."""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

Doc = dict[str, Any]
_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None]) -> str:
    """``[0, 1, 4, None, 2]`` -> ``▁▂█ ▃``: each value's height against the largest."""
    seen = [v for v in values if v is not None]
    top = max(seen, default=0.0)
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif top <= 0:
            out.append(_BARS[0])
        else:
            out.append(_BARS[min(len(_BARS) - 1, int(v / top * (len(_BARS) - 1) + 0.5))])
    return "".join(out)


class History:
    """The last ``size`` values of the figures drawn as sparklines (kept by the live loop only)."""

    SERIES = ("reader_lag_s", "writer_lag", "applied_per_s", "validation_failed_per_s")

    def __init__(self, size: int = 60) -> None:
        self.values: dict[str, deque[float | None]] = {s: deque(maxlen=size) for s in self.SERIES}

    def add(self, doc: Doc) -> None:
        kafka = doc.get("kafka") or {}
        lags = [t.get("writer_lag") for t in (kafka.get("tables") or {}).values()]
        rates = doc.get("rates") or {}
        point = {
            "reader_lag_s": (doc.get("reader") or {}).get("lag_s"),
            "writer_lag": float(sum(x for x in lags if x is not None)) if lags else None,
            "applied_per_s": (rates.get("dual_write") or {}).get("applied_per_s"),
            "validation_failed_per_s": (rates.get("validation") or {}).get("failed_per_s"),
        }
        for name, value in point.items():
            self.values[name].append(float(value) if isinstance(value, int | float) else None)


def _ago(ts: float | None, now: float) -> str:
    if not ts:
        return "never"
    s = max(0.0, now - ts)
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}m ago" if s < 7200 else f"{s / 3600:.1f}h ago"


def _num(v: Any, fmt: str = "{:.1f}", none: str = "-") -> str:
    return none if v is None else fmt.format(v)


def _pct(v: Any) -> str:
    return "-" if v is None else f"{float(v) * 100:.3g} %"


def _alive(d: Doc | None) -> str:
    if not d or d.get("heartbeat_age_s") is None:
        return "[dim]never seen[/]"
    age = f"{d['heartbeat_age_s']:.0f}s"
    return f"[green]up[/] ({age})" if d.get("alive") else f"[red]silent[/] ({age})"


def header(doc: Doc) -> RenderableType:
    p = doc.get("phase")
    if p is None:
        return Panel(Text(doc.get("error", "no phase document"), style="red"), title="replicator status")
    now = doc["at"]
    when = dt.datetime.fromtimestamp(p["updated_at"], tz=dt.UTC).isoformat(timespec="seconds") \
        if p["updated_at"] else "-"
    flags = "  ".join(f"{k}={v}" for k, v in p["flags"].items() if k != "migration_phase")
    lines = [f"[bold]Phase {p['phase']} · {p['name']}[/]   epoch {p['epoch']}   generation {p['generation']}",
             f"by {p['updated_by'] or '-'} at {when} ({_ago(p['updated_at'], now)}): {p['reason'] or '-'}",
             f"[dim]{flags}[/]"]
    if p.get("freeze"):
        lines.append(f"[yellow]writes frozen for a switch to phase {p['freeze']['target']}[/]")
    sw = doc.get("switch")
    if sw and (p.get("freeze") or now - float(sw.get("at", 0)) < 300):
        lines.append(f"switch to {sw.get('target')}: step {sw.get('step')}, pause so far "
                     f"{_num(sw.get('pause_so_far_s'), '{:.3f}')} s, clients {len(sw.get('clients') or [])}"
                     + (f" ({sw['why']})" if sw.get("why") else ""))
    return Panel("\n".join(lines), title=f"replicator status · {doc.get('namespace')}", expand=True)


def gates_table(doc: Doc) -> RenderableType:
    g = doc.get("gates") or {}
    nxt = g.get("next_phase")
    t = Table(title=f"gates into phase {nxt}" if nxt else "phase-5 soak before MySQL is retired",
              expand=True, title_justify="left")
    for col in ("gate", "", "measured", "threshold", "soak left"):
        t.add_column(col)
    if "error" in g:
        t.add_row("-", "[red]?[/]", g["error"], "", "")
    for r in g.get("results", []):
        left = r.get("remaining_s")
        verdict = "[green]PASS[/]" if r["passed"] else "[red]FAIL[/]"
        t.add_row(r["gate"], verdict, r["measured"], r["threshold"], "-" if left is None else f"{left:.0f} s")
    return t


def pipeline_table(doc: Doc, history: History | None) -> RenderableType:
    rates = doc.get("rates") or {}
    dw, va = rates.get("dual_write") or {}, rates.get("validation") or {}
    rd = rates.get("dynamodb_reads") or {}
    t = Table(title=f"pipeline (rates over {rates.get('window_s', '-')} s)", expand=True,
              title_justify="left")
    for col in ("process", "state", "figures", "trend"):
        t.add_column(col)

    def spark(series: str) -> str:
        return sparkline(list(history.values[series])) if history else ""

    reader = doc.get("reader") or {}
    t.add_row("reader", _alive(reader), f"lag {_num(reader.get('lag_s'))} s", spark("reader_lag_s"))
    t.add_row("writer", _alive(doc.get("writer")),
              f"{_num(dw.get('applied_per_s'))}/s applied, {_num(dw.get('failed_per_s'))}/s failed, "
              f"success {_pct(dw.get('success_rate'))}", spark("applied_per_s"))
    vals = doc.get("validators") or []
    live = sum(1 for v in vals if v.get("alive"))
    t.add_row("validation", f"{live}/{len(vals)} validators up" if vals else "[dim]no validator[/]",
              f"{_num(va.get('passed_per_s'))}/s passed, {_num(va.get('failed_per_s'))}/s failed, "
              f"error rate {_pct(va.get('error_rate'))}", spark("validation_failed_per_s"))
    t.add_row("dynamodb reads", "", f"{_num(rd.get('ok_per_s'))}/s ok, "
              f"{_num(rd.get('failed_per_s'))}/s failed, error rate {_pct(rd.get('error_rate'))}", "")
    rev = doc.get("reverse")
    if rev:
        t.add_row("reverse", _alive(rev), f"lag {_num(rev.get('lag_s'))} s, dead letters "
                  f"{rev.get('deadletters', 0)}", "")
    return t


def kafka_table(doc: Doc, history: History | None) -> RenderableType:
    k = doc.get("kafka") or {}
    dead = k.get("dead_letters")
    t = Table(title=f"Kafka · dead letters {'-' if dead is None else dead}"
              + (f"  · trend {sparkline(list(history.values['writer_lag']))}" if history else ""),
              expand=True, title_justify="left")
    for col in ("table", "messages", "writer lag", "validator lag"):
        t.add_column(col)
    if k.get("error"):
        t.add_row("[red]Kafka[/]", k["error"], "", "")
    for source, d in (k.get("tables") or {}).items():
        if not d.get("exists"):
            t.add_row(source, "[dim]no topic[/]", "-", "-")
            continue
        t.add_row(source, str(d["messages"]), _num(d.get("writer_lag"), "≈{}"),
                  _num(d.get("validator_lag"), "≈{}"))
    return t


def backfill_table(doc: Doc) -> RenderableType | None:
    rows = doc.get("backfill") or {}
    if not rows:
        return None
    t = Table(title="backfill", expand=True, title_justify="left")
    for col in ("table", "rows", "of about", "done"):
        t.add_column(col)
    for source, d in rows.items():
        done, total = int(d.get("done", 0)), int(d.get("total_estimate", 0) or 0)
        pct = f"{min(100.0, done / total * 100):.1f} %" if total else "-"
        pct = "complete" if d.get("complete") else pct
        t.add_row(source, str(done), str(total), pct)
    return t


def reconcile_table(doc: Doc) -> RenderableType | None:
    rows = doc.get("reconcile") or {}
    if not rows:
        return None
    t = Table(title="reconcile", expand=True, title_justify="left")
    for col in ("table", "stage", "progress", "result", "when"):
        t.add_column(col)
    for source, d in rows.items():
        total = d.get("total")
        progress = f"{d.get('done', 0)}/{total}" if total else str(d.get("done", 0))
        if d.get("finished"):
            result = "[green]equal[/]" if d.get("ok") else f"[red]{d.get('differences')} differences[/]"
        else:
            result = "running"
        t.add_row(source, str(d.get("stage", "-")), progress, result, _ago(d.get("at"), doc["at"]))
    return t


def clients_table(doc: Doc) -> RenderableType | None:
    rows = doc.get("clients") or []
    if not rows:
        return None
    t = Table(title=f"application clients ({sum(1 for c in rows if c['live'])} live)", expand=True,
              title_justify="left")
    for col in ("name", "host", "pid", "phase", "acked epoch", "lease"):
        t.add_column(col)
    for c in rows:
        lease = f"[green]{c['expires_in_s']:.0f}s[/]" if c["live"] else "[red]lapsed[/]"
        t.add_row(*(str(c[k]) for k in ("name", "host", "pid", "phase", "acked_epoch")), lease)
    return t


def frame(doc: Doc, history: History | None = None) -> RenderableType:
    parts: list[RenderableType] = [header(doc)]
    if "phase" in doc:
        parts += [gates_table(doc), pipeline_table(doc, history)]
    parts.append(kafka_table(doc, history))
    for extra in (backfill_table(doc), reconcile_table(doc), clients_table(doc)):
        if extra is not None:
            parts.append(extra)
    metrics = doc.get("metrics") or {}
    for url, m in metrics.items():
        text = m["error"] if "error" in m else ", ".join(f"{k}={v:g}" for k, v in sorted(m.items())[:12])
        parts.append(Text(f"{url}: {text}", style="red" if "error" in m else "dim"))
    return Group(*parts)

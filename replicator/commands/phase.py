"""``replicator phase``: show, check and change the migration phase.

Sub-commands: status, set N, rollback N, history, check N (DESIGN §7), and repair (a switch left
frozen by a controller that died).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any

import orjson
import typer

from replicator.commands.common import ConfigOption, bootstrap, exit_on_error
from replicator.control import HistoryEntry, PhaseState, names
from replicator.control.state import PHASE_NAMES
from replicator.errors import EXIT_CHECK_FAILED
from replicator.phase.controller import ChangeResult, PhaseController, flags_document, open_phase_controller
from replicator.phase.gates import GateResult, soak_time
from replicator.phase.rules import DISCARD_PHASE5_FLAG, check_phase_number
from replicator.phase.switch import LEASE_PREFIX, PROGRESS_MARKER, stale_after_s
from replicator.settings import Settings

PhaseArg = Annotated[int, typer.Argument(metavar="N", help="Phase number, 1-5.", show_default=False)]
ReasonOption = Annotated[str, typer.Option(
    "--reason", "-r", help="Why (required; kept in the audit history).", show_default=False,
)]
ActorOption = Annotated[str | None, typer.Option(
    "--actor", help="Who makes the change (default: the OS user).",
)]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]

phase_app = typer.Typer(
    name="phase", no_args_is_help=True, add_completion=False,
    help=(
        "Show, check and change the migration phase.\n\n"
        "Phases: 1 MySQL Only, 2 Safety (dual write), 3 Validation (dual read), 4 Transition (reads from "
        "DynamoDB), 5 DynamoDB Only. Forward one step at a time, gated; back to any lower phase at any "
        "time. Exit codes: 0 ok, 1 a gate failed, 2 bad input or unreachable store."
    ),
)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).isoformat(timespec="seconds") if ts else "-"


def _echo_json(doc: Any) -> None:
    typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())


def _gate_lines(results: list[GateResult]) -> list[str]:
    out = []
    for r in results:
        window = f"  window {r.window_s:.0f} s" if r.window_s is not None else ""
        line = f"  [{'PASS' if r.passed else 'FAIL'}] {r.gate}: {r.measured}  (needs {r.threshold}){window}"
        out.append(line + (f"\n         {r.detail}" if r.detail else ""))
    return out


def _status_doc(ctl: PhaseController, state: PhaseState, settings: Settings) -> dict[str, Any]:
    if state.phase < 5:
        results = ctl.check(state.phase + 1)
        gates: dict[str, Any] = {"next_phase": state.phase + 1, "ready": all(r.passed for r in results),
                                 "results": [r.to_doc() for r in results]}
    else:  # no further phase: show the guide's phase-5 soak before MySQL is retired
        soak = soak_time(ctl.clock.now(), state.updated_at, settings.gates.window_5_final_s, 5)
        gates = {"next_phase": None, "ready": soak.passed, "results": [soak.to_doc()]}
    return {
        "phase": state.phase, "name": state.name, "flags": state.flags(), "epoch": state.epoch,
        "updated_at": state.updated_at, "updated_at_iso": _iso(state.updated_at),
        "updated_by": state.updated_by, "reason": state.reason, "backend": settings.control.backend,
        "gates": gates, "backfill": ctl.store.list_markers(names.BACKFILL_PREFIX),
        "generation": state.generation,
        "freeze": None if state.freeze is None else state.freeze.to_doc(),
        "switch": ctl.store.get_marker(PROGRESS_MARKER),
        "clients": ctl.store.list_markers(LEASE_PREFIX),
    }


@phase_app.command("status")
def status_cmd(config: ConfigOption = None, json: JsonOption = False) -> None:
    """Current phase, its five flags, epoch, who/when/why, the next gate's summary and backfill progress."""
    settings = bootstrap(config)
    with exit_on_error(), open_phase_controller(settings) as ctl:
        doc = _status_doc(ctl, ctl.get_state(), settings)
    if json:
        _echo_json(doc)
        return
    typer.echo(f"phase {doc['phase']} ({doc['name']})  epoch {doc['epoch']}  store {doc['backend']}")
    for k, v in doc["flags"].items():
        typer.echo(f"  {k}: {str(v).lower()}")
    typer.echo(f"changed {doc['updated_at_iso']} by {doc['updated_by'] or '-'}: {doc['reason'] or '-'}")
    g = doc["gates"]
    if g["next_phase"] is None:
        typer.echo(f"MySQL retirement soak: {'done' if g['ready'] else 'not done'}")
    else:
        typer.echo(f"gates to phase {g['next_phase']}: {'ready' if g['ready'] else 'not ready'}")
    typer.echo("\n".join(_gate_lines([GateResult(**r) for r in g["results"]])))
    for name, marker in doc["backfill"].items():
        typer.echo(f"{name}: " + ", ".join(f"{k}={v}" for k, v in marker.items()))
    typer.echo(f"version generation {doc['generation']} "
               f"({'DynamoDB' if doc['generation'] % 2 else 'MySQL'} takes the writes)")
    if doc["freeze"]:
        age = time.time() - float(doc["freeze"].get("since", 0))
        stale = age > stale_after_s(settings.cutover.max_write_pause_s)
        typer.echo(f"FROZEN: writes paused for the switch to phase {doc['freeze']['target']} for {age:.0f} s"
                   + ("; its controller is gone: `replicator phase repair --reason ...`" if stale else ""))
    sw = doc["switch"]
    if sw:
        steps = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in sw.get("steps", {}).items())
        typer.echo(f"last switch to phase {sw.get('target')}: {sw.get('step')} after "
                   f"{sw.get('pause_so_far_s')} s ({steps}); clients acknowledged: "
                   f"{', '.join(sw.get('clients', [])) or 'none'}"
                   + (f"; why: {sw['why']}" if sw.get("why") else ""))
    now = time.time()
    live = [k.removeprefix(LEASE_PREFIX) for k, d in doc["clients"].items()
            if float(d.get("expires_at", 0)) > now]
    typer.echo(f"live clients: {len(live)}" + (f" ({', '.join(sorted(live)[:10])})" if live else ""))


def _report(result: ChangeResult) -> None:
    t = result.transition
    if not result.changed:
        typer.echo(f"already in phase {t.to_phase} ({PHASE_NAMES[t.to_phase]}); nothing changed")
        return
    if result.gates:
        typer.echo("\n".join(_gate_lines(list(result.gates))))
    typer.echo(f"Migration phase {t.from_phase} -> {t.to_phase} ({PHASE_NAMES[t.to_phase]}), "
               f"epoch {result.state.epoch}, by {result.state.updated_by}")
    if result.forced_gates:
        typer.echo(f"FORCED past failed gates: {', '.join(result.forced_gates)} (recorded in the history)")


@phase_app.command("set")
def set_cmd(
    n: PhaseArg, reason: ReasonOption, actor: ActorOption = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Go on past failed gates; each one is recorded in the history.",
    )] = False,
    config: ConfigOption = None,
) -> None:
    """Move forward to phase N (one step at a time; gated), or confirm the current one."""
    settings = bootstrap(config)
    with exit_on_error(), open_phase_controller(settings) as ctl:
        _report(ctl.set_migration_phase(n, reason=reason, actor=actor, force=force, direction="forward"))


@phase_app.command("rollback")
def rollback_cmd(
    n: PhaseArg, reason: ReasonOption, actor: ActorOption = None,
    discard: Annotated[bool, typer.Option(
        DISCARD_PHASE5_FLAG,
        help="Needed to leave phase 5: the writes made in phase 5 exist only in DynamoDB, are NOT in MySQL, "
             "and the application will no longer see them after the rollback.",
    )] = False,
    config: ConfigOption = None,
) -> None:
    """Go back to any lower phase N (not gated; from phase 5 see --discard-phase5-writes-not-in-mysql)."""
    settings = bootstrap(config)
    with exit_on_error(), open_phase_controller(settings) as ctl:
        _report(ctl.set_migration_phase(
            n, reason=reason, actor=actor, discard_phase5_writes_not_in_mysql=discard, direction="rollback",
        ))


@phase_app.command("repair")
def repair_cmd(
    reason: ReasonOption, actor: ActorOption = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Repair a freeze younger than the bound a live controller keeps to (the pause bound "
                        "+ 90 s): only when you know the process running the switch is gone.",
    )] = False,
    config: ConfigOption = None,
) -> None:
    """End a write-target switch (4 -> 5 or 5 -> 4) left frozen by a controller that died mid-way.

    While frozen, every application write waits and then fails. This aborts the switch as the
    protocol would have: both fences back to the frozen phase's store at a fresh generation, the
    phase unfrozen, audited. Nothing is lost: nothing was written to the other store. Exit 0 when
    repaired or nothing was frozen; 2 when the freeze is too recent (its controller may be alive)."""
    settings = bootstrap(config)
    with exit_on_error(), open_phase_controller(settings) as ctl:
        state = ctl.repair(reason=reason, actor=actor, force=force)
    if state is None:
        typer.echo("nothing is frozen: no switch to repair")
        return
    typer.echo(f"repaired: phase {state.phase} ({PHASE_NAMES[state.phase]}) unfrozen, epoch {state.epoch}, "
               f"generation {state.generation} ({'DynamoDB' if state.generation % 2 else 'MySQL'} takes the "
               f"writes); see `replicator phase history`")


def _history_line(h: HistoryEntry) -> str:
    extra = ""
    if h.forced_gates:
        extra += f"  FORCED: {', '.join(h.forced_gates)}"
    if h.acknowledgements:
        extra += f"  ACK: {', '.join(h.acknowledgements)}"
    return f"{h.epoch:>4}  {_iso(h.at)}  {h.actor}  {h.from_phase} -> {h.to_phase}  {h.reason}{extra}"


@phase_app.command("history")
def history_cmd(config: ConfigOption = None, json: JsonOption = False) -> None:
    """Every phase change, oldest first: epoch, when, who, from -> to, why, forced gates."""
    settings = bootstrap(config)
    with exit_on_error(), open_phase_controller(settings) as ctl:
        entries = ctl.history()
    if json:
        _echo_json([h.to_doc() for h in entries])
        return
    if not entries:
        typer.echo("no phase changes yet (phase 1)")
    for h in entries:
        typer.echo(_history_line(h))


@phase_app.command("check")
def check_cmd(n: PhaseArg, config: ConfigOption = None, json: JsonOption = False) -> None:
    """Measure the gates into phase N: each gate's value, threshold, window and verdict; exit 0 or 1."""
    settings = bootstrap(config)
    with exit_on_error():
        check_phase_number(n)
        with open_phase_controller(settings) as ctl:
            results = ctl.check(n)
            state = ctl.get_state()
    ok = all(r.passed for r in results)
    if json:
        _echo_json({"target_phase": n, "current": flags_document(state), "passed": ok,
                    "results": [r.to_doc() for r in results]})
    else:
        typer.echo(f"gates into phase {n} ({PHASE_NAMES[n]}): {'PASS' if ok else 'FAIL'}")
        typer.echo("\n".join(_gate_lines(results)) if results else "  (phase 1 has no gates)")
    if not ok:
        raise typer.Exit(EXIT_CHECK_FAILED)


def register(app: typer.Typer) -> None:
    app.add_typer(phase_app, name="phase")

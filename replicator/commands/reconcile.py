"""``replicator reconcile``: compare MySQL with DynamoDB table by table, by checksum ranges."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from replicator.commands.common import ConfigOption, bootstrap, exit_on_error, start_up
from replicator.errors import EXIT_CHECK_FAILED


def register(app: typer.Typer) -> None:
    @app.command("reconcile")
    def reconcile(
        config: ConfigOption = None,
        table: Annotated[list[str] | None, typer.Option(
            "--table", "-t", help="Compare only this mapped table (database.table); repeatable.")] = None,
        method: Annotated[str, typer.Option(
            help="checksum: fold primary-key ranges on both sides and bisect only the ranges that "
                 "differ (tables whose key has text columns fall back to full); full: read every row "
                 "of both stores.")] = "checksum",
        chunk_rows: Annotated[int, typer.Option(min=2, help="checksum: rows per range.")] = 2000,
        leaf_rows: Annotated[int, typer.Option(
            min=1, help="checksum: ranges of at most this many rows are compared row by row.")] = 16,
        settle_s: Annotated[float, typer.Option(
            min=0, help="When rows differ, wait this long and compare them again, so changes still in "
                        "flight through the pipeline are not reported as divergence.")] = 5.0,
        repair: Annotated[bool, typer.Option(
            "--repair", help="checksum: send the differing rows through the pipeline again as fresh "
                             "snapshot events (versioned like the backfill, applied by the writer's "
                             "conditional write; a row MySQL no longer has becomes a delete), wait "
                             "for the writer, and compare them again. Phases 2-4 only.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
        show: Annotated[int, typer.Option(min=0, help="How many differences to print per table.")] = 20,
        resume: Annotated[bool, typer.Option(
            help="Go on with the tables an interrupted run of the same tables did not finish (the "
                 "finished ones are reported from that run, marked resumed).")] = False,
        metrics_port: Annotated[int | None, typer.Option(
            help="Serve Prometheus /metrics (replicator_reconcile_*) on this port while it runs "
                 "(default: metrics.port).")] = None,
        record: Annotated[bool, typer.Option(
            help="Count every key compared as a validation (passed or failed) in the control store, "
                 "where the phase 3->4 gate reads the validation error rate.")] = True,
    ) -> None:
        """Compare every MySQL row with its DynamoDB item through the table mapping.

        By checksum ranges (default): MySQL folds each primary-key range on the server (count and
        XOR of a row digest), DynamoDB is scanned once in parallel segments and folded into the same
        ranges, and only ranges whose folds differ are bisected down to rows: a clean table costs two
        streaming passes and no row-by-row traffic. Tombstones count as absent. Each difference is
        logged as `Data validation failed`. Exit 0 when every table matches, 1 when any differs
        (after --repair: when any still differs).
        """
        settings = bootstrap(config)
        if method not in ("checksum", "full"):
            typer.echo(f"error: --method must be 'checksum' or 'full', got {method!r}", err=True)
            raise typer.Exit(2)
        start_up(settings, ("mysql", "dynamodb", "control"),
                 tables=[t for t in table if settings.table(t)] if table else None)
        from replicator.diff import describe
        from validators.reconcile_ranges import RangeOptions
        from validators.reconcile_service import reconcile_tables

        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=Console(stderr=True), transient=True,
                            disable=as_json)

        def task(name: str) -> tuple[Callable[[str, int, int | None], None], Callable[[], None]]:
            tid = progress.add_task(name, total=None)

            def update(stage: str, done: int, total: int | None) -> None:
                progress.update(tid, description=f"{name}: {stage}", completed=done, total=total)

            return update, lambda: progress.remove_task(tid)

        from replicator.metrics import serve_metrics
        from validators.metrics import ReconcileMetrics

        metrics = ReconcileMetrics()
        with exit_on_error(), progress:
            serve_metrics(settings.metrics.port if metrics_port is None else metrics_port, metrics.registry)
            docs, found = reconcile_tables(
                settings, list(table or ()) or [t.source for t in settings.tables], method=method,
                options=RangeOptions(chunk_rows=chunk_rows, leaf_rows=leaf_rows, settle_s=settle_s),
                repair=repair, record=record, task=task, resume=resume, metrics=metrics)
        if as_json:
            typer.echo(orjson.dumps({"ok": all(d["ok"] for d in docs), "tables": docs},
                                    option=orjson.OPT_INDENT_2).decode())
        else:
            out = Console()
            out.print(_summary(docs))
            for d in docs:
                if d.get("why_full"):
                    out.print(f"  {d['table']}: compared in full ({d['why_full']})", markup=False)
                for diff in found[d["table"]][:show]:
                    out.print(f"  {describe(diff)}", markup=False)
        if not all(d["ok"] for d in docs):
            raise typer.Exit(EXIT_CHECK_FAILED)


def _summary(docs: list[dict[str, Any]]) -> Table:
    summary = Table(title="replicator reconcile")
    for col in ("table", "method", "mysql rows", "dynamodb items", "tombstones", "ranges (differing)",
                "rows fetched", "differences", "repair"):
        summary.add_column(col)
    for d in docs:
        n = len(d["differences"])
        rep = d.get("repair")
        summary.add_row(
            d["table"], d["method"], str(d["mysql_rows"]), str(d["dynamodb_items"]), str(d["tombstones"]),
            f"{d['ranges']} ({d['ranges_differing']})" if "ranges" in d else "-",
            str(d["mysql_rows_fetched"]),
            "[green]0[/]" if not n else f"[red]{n}[/]",
            "-" if rep is None else f"{rep['published']} sent, {rep['remaining']} remain")
    return summary

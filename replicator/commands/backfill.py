"""``replicator backfill``: consistent copy of the existing rows while writes go on."""

from __future__ import annotations

import signal
import sys
import threading
import time
from types import FrameType
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from replicator.commands.common import ConfigOption, bootstrap, exit_on_error, start_up
from replicator.errors import EXIT_CHECK_FAILED, EXIT_FATAL_DATA


def register(app: typer.Typer) -> None:
    @app.command("backfill")
    def backfill(
        config: ConfigOption = None,
        table: Annotated[list[str] | None, typer.Option(
            "--table", "-t", help="Copy only this mapped table (database.table); repeatable.")] = None,
        restart: Annotated[bool, typer.Option(
            help="Forget the saved chunk cursors and copy from the first row again.")] = False,
        chunk_rows: Annotated[int, typer.Option(min=1, max=100_000, help="Rows per chunk.")] = 1000,
        max_rows_per_s: Annotated[float, typer.Option(
            min=0, help="Cap on rows copied per second (0 = no cap).")] = 5000.0,
        max_query_s: Annotated[float, typer.Option(
            min=0.001, help="A chunk SELECT slower than this backs the copy off.")] = 0.5,
        max_lag_s: Annotated[float, typer.Option(
            min=0, help="Replication lag (when the server is a replica) above this backs the copy off.",
        )] = 10.0,
        wait: Annotated[bool, typer.Option(
            help="After copying, wait until the writer has applied every snapshot row before "
                 "marking the backfill complete (the phase 2->3 gate reads that mark).")] = True,
        wait_timeout_s: Annotated[float, typer.Option(
            min=0, help="Give up waiting for the writer after this long (0 = no limit).")] = 0.0,
        progress: Annotated[bool, typer.Option(help="Show progress bars (default: when on a terminal).")] =
            sys.stderr.isatty(),
        as_json: Annotated[bool, typer.Option(
            "--json", help="Print the result per table as JSON on stdout (progress stays on stderr).",
        )] = False,
        metrics_port: Annotated[int | None, typer.Option(
            min=0, max=65535,
            help="Serve Prometheus /metrics (replicator_backfill_*) on this port "
                 "(default: metrics.port; 0 = off).",
        )] = None,
    ) -> None:
        """Copy every mapped table (or --table ones), chunked by primary key, while the stream runs.

        Each chunk is read from a consistent, lock-free snapshot together with the binlog
        position that splits it from the stream; its rows carry that position's version and
        go through Kafka to the writer as op "r" events, so newer stream changes always win.
        The chunk cursor is saved in the control store: rerunning resumes (kill -9 included).
        A foreign-key cascade's parent tables are copied before their children; once all is
        applied, the tables a cascade reaches through another child table are swept, and an item
        whose row a cascade removed before the copy reached it is deleted (the reader and the
        writer must be running; --no-wait skips the sweep).
        Exit 0 done, 1 rows were dead-lettered or the writer did not apply them in time,
        2 bad usage, 3 a table without primary key or one that vanished.
        """
        settings = bootstrap(config)
        start_up(settings, ("mysql", "kafka", "control"),
                 tables=[t for t in table if settings.table(t)] if table else None)
        from replicator.backfill.runner import Backfill, BackfillMetrics, BackfillOptions, TableProgress
        from replicator.metrics import serve_metrics

        metrics = BackfillMetrics()
        serve_metrics(settings.metrics.port if metrics_port is None else metrics_port, metrics.registry)
        stop = threading.Event()

        def _stop(signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        opts = BackfillOptions(
            tables=tuple(table or ()), restart=restart, chunk_rows=chunk_rows, max_rows_per_s=max_rows_per_s,
            max_query_s=max_query_s, max_lag_s=max_lag_s, wait_for_writer=wait, wait_timeout_s=wait_timeout_s,
        )
        console = Console(stderr=True)
        bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]:>8.0f} rows/s"), TimeRemainingColumn(),
                        console=console, disable=not progress)
        tasks: dict[str, TaskID] = {}

        def on_progress(p: TableProgress) -> None:
            if p.source not in tasks:
                tasks[p.source] = bars.add_task(p.source, total=max(p.total_estimate, 1), rate=0.0)
            total = max(p.total_estimate, p.done, 1)
            bars.update(tasks[p.source], completed=p.done, total=total, rate=p.rate)

        with exit_on_error(), bars:
            run = Backfill(settings, opts, stop=stop, on_progress=on_progress, metrics=metrics)
            results = run.run()
        if as_json:
            typer.echo(orjson.dumps({"applied": run.applied, "tables": [{
                "table": p.source, "rows": p.done, "chunks": p.chunks, "dead_lettered": p.dead_lettered,
                "complete": p.complete, "error": p.error, "total_estimate": p.total_estimate,
                "seconds": round(time.time() - p.started_at, 3)} for p in results]},
                option=orjson.OPT_INDENT_2).decode())
        for p in results:
            state = "complete" if p.complete else ("FAILED: " + p.error if p.error else "interrupted")
            console.print(f"{p.source}: {p.done} rows copied, {p.dead_lettered} dead-lettered -- {state}")
        if any(p.error for p in results):
            raise typer.Exit(EXIT_FATAL_DATA)
        if any(p.dead_lettered for p in results):
            console.print("some rows could not be published: see the dead-letter topic")
            raise typer.Exit(EXIT_CHECK_FAILED)
        if run.applied is False:
            console.print("the writer has not applied the snapshot yet: the backfill is not marked "
                          "complete; check `replicator write`, then rerun to wait again")
            raise typer.Exit(EXIT_CHECK_FAILED)

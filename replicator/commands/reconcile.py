"""``replicator reconcile``: compare every row of MySQL with DynamoDB, table by table."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from replicator.commands.common import ConfigOption, bootstrap, exit_on_error
from replicator.errors import EXIT_CHECK_FAILED, ConfigError


def register(app: typer.Typer) -> None:
    @app.command("reconcile")
    def reconcile(
        config: ConfigOption = None,
        table: Annotated[list[str] | None, typer.Option(
            "--table", "-t", help="Compare only this mapped table (database.table); repeatable.")] = None,
        settle_s: Annotated[float, typer.Option(
            min=0, help="When rows differ, wait this long and compare again, so changes still in "
                        "flight through the pipeline are not reported as divergence.")] = 5.0,
        show: Annotated[int, typer.Option(min=0, help="How many differences to print per table.")] = 20,
        record: Annotated[bool, typer.Option(
            help="Count every key compared as a validation (passed or failed) in the control store, "
                 "where the phase 3->4 gate reads the validation error rate.")] = True,
    ) -> None:
        """Compare every MySQL row with its DynamoDB item through the table mapping.

        Tombstones count as absent. Each difference is logged as `Data validation failed` with
        a field-by-field diff. Exit 0 when every table matches, 1 when any differs.
        """
        settings = bootstrap(config)
        from replicator.adapters.dynamodb import dynamodb_client
        from replicator.backfill.source import SnapshotSource
        from replicator.control import open_control_store
        from replicator.diff import describe
        from validators.reconcile import reconcile_table

        chosen = list(table or ()) or [t.source for t in settings.tables]
        mappings = [settings.table(s) for s in chosen]
        console = Console()
        with exit_on_error():
            if not chosen:
                raise ConfigError("no tables are mapped: add tables[] to the configuration")
            missing = [s for s, m in zip(chosen, mappings, strict=True) if m is None]
            if missing:
                raise ConfigError(f"--table {missing[0]} is not a mapped table")
            client = dynamodb_client(settings.dynamodb)
            with SnapshotSource(settings.mysql) as src, open_control_store(settings) as store:
                reports = [reconcile_table(settings, m, src, client, settle_s=settle_s,
                                           record=store if record else None)
                           for m in mappings if m is not None]
        summary = Table(title="replicator reconcile")
        for col in ("table", "mysql rows", "dynamodb items", "tombstones", "differences"):
            summary.add_column(col)
        for r in reports:
            summary.add_row(r.table, str(r.mysql_rows), str(r.dynamodb_items), str(r.tombstones),
                            "[green]0[/]" if r.ok else f"[red]{len(r.differences)}[/]")
        console.print(summary)
        for r in reports:
            for d in r.differences[:show]:
                console.print(f"  {describe(d)}", markup=False)
        if not all(r.ok for r in reports):
            raise typer.Exit(EXIT_CHECK_FAILED)

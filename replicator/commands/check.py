"""``replicator check``: probe MySQL, Kafka, DynamoDB and Redis; exit 0 if all answer."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from replicator.commands.common import ConfigOption, bootstrap, exit_on_error
from replicator.errors import EXIT_CHECK_FAILED
from replicator.health import run_probes
from replicator.mapping.model import check_model, explain


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check(
        config: ConfigOption = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the probes as JSON.")] = False,
    ) -> None:
        """Probe each service the configuration points at and print a report (exit 0 ok, 1 failed),
        then the target model: which tables share which DynamoDB table, what is embedded where,
        which GSIs and collections (exit 2 for a model in which two tables could write one item)."""
        settings = bootstrap(config)
        with exit_on_error():
            check_model(settings)
        results = run_probes(settings)
        if as_json:
            doc = {"ok": all(p.ok for p in results), "probes": [asdict(p) for p in results],
                   "model": explain(settings)}
            typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        else:
            table = Table(title="replicator check")
            for col in ("service", "endpoint", "status", "detail", "time"):
                table.add_column(col)
            for p in results:
                table.add_row(p.service, p.endpoint, "[green]ok[/]" if p.ok else "[red]FAILED[/]",
                              p.detail, f"{p.seconds * 1000:.0f} ms")
            Console().print(table)
            for line in explain(settings):
                typer.echo(line)
        if not all(p.ok for p in results):
            raise typer.Exit(EXIT_CHECK_FAILED)

"""``replicator check``: probe MySQL, Kafka, DynamoDB and Redis; exit 0 if all answer."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from replicator.commands.common import ConfigOption, bootstrap
from replicator.errors import EXIT_CHECK_FAILED
from replicator.health import run_probes


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check(
        config: ConfigOption = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the probes as JSON.")] = False,
    ) -> None:
        """Probe each service the configuration points at and print a report (exit 0 ok, 1 failed)."""
        settings = bootstrap(config)
        results = run_probes(settings)
        if as_json:
            doc = {"ok": all(p.ok for p in results), "probes": [asdict(p) for p in results]}
            typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        else:
            table = Table(title="replicator check")
            for col in ("service", "endpoint", "status", "detail", "time"):
                table.add_column(col)
            for p in results:
                table.add_row(p.service, p.endpoint, "[green]ok[/]" if p.ok else "[red]FAILED[/]",
                              p.detail, f"{p.seconds * 1000:.0f} ms")
            Console().print(table)
        if not all(p.ok for p in results):
            raise typer.Exit(EXIT_CHECK_FAILED)

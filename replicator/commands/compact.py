"""``replicator compact``: remove the expired tombstone entries of embedded children."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from replicator.commands.common import ConfigOption, bootstrap, exit_on_error, start_up

if TYPE_CHECKING:
    from consumers.writer.compact import CompactReport
from replicator.errors import EXIT_CHECK_FAILED, EXIT_USAGE


def register(app: typer.Typer) -> None:
    @app.command("compact")
    def compact(
        config: ConfigOption = None,
        table: Annotated[list[str] | None, typer.Option(
            "--table", "-t", help="Only this parent mapping (database.table: a table others are "
                                  "embedded in); repeatable. Default: every such table.")] = None,
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="Count the expired tombstone entries; remove nothing.")] = False,
        segments: Annotated[int, typer.Option(min=1, max=64, help="Parallel scan segments.")] = 4,
        max_writes_per_s: Annotated[float, typer.Option(
            min=0, help="At most this many removal requests a second (each removes up to 25 entries "
                        "of one item); 0: no cap.")] = 100.0,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    ) -> None:
        """Remove the tombstone entries of deleted embedded children once they are older than
        `dynamodb.tombstone_ttl_s`, as DynamoDB's TTL removes item tombstones.

        A deleted child row leaves a tombstone entry in its parent's item, so that no older change
        can bring it back; an item cannot be trimmed by TTL, so without this a parent whose children
        come and go grows towards DynamoDB's 400 KB item limit. Each expired entry is removed only if
        it is still the tombstone that was read. Safe in any phase and at any time; run it daily
        (the Helm chart's compact CronJob). Exit 0 when done (also when nothing was expired), 1 when
        stopped by SIGTERM/SIGINT before the end (run it again to go on), 2 for a --table that has
        no embedded children or bad configuration.
        """
        settings = bootstrap(config)
        from consumers.writer.compact import compact_table, parents_with_children

        parents = parents_with_children(settings, list(table) if table else None)
        unknown = sorted(set(table or ()) - {p.source for p in parents})
        if unknown:
            having = [p.source for p in parents_with_children(settings)] or ["none in this configuration"]
            typer.echo(f"error: --table {', '.join(unknown)}: not a mapped table with embedded children "
                       f"(tables[].embed.parent); those are: {', '.join(having)}", err=True)
            raise typer.Exit(EXIT_USAGE)
        start_up(settings, ("dynamodb",), tables=())
        from replicator.adapters.dynamodb import dynamodb_client
        from replicator.lifecycle import stop_on_signals

        client = dynamodb_client(settings.dynamodb)
        stopping = stop_on_signals("consumers.writer.compact")  # SIGTERM/SIGINT: stop at the next item
        with exit_on_error():
            reports = [compact_table(client, settings, p, dry_run=dry_run, segments=segments,
                                     max_writes_per_s=max_writes_per_s, stop=stopping)
                       for p in parents if not stopping.is_set()]
        complete = not stopping.is_set()
        if as_json:
            typer.echo(orjson.dumps({"ok": complete, "tables": [r.to_doc() for r in reports]},
                                    option=orjson.OPT_INDENT_2).decode())
        elif not reports:
            typer.echo("no table has embedded children (tables[].embed): nothing to compact")
        else:
            _print(reports, dry_run)
        if not complete:
            typer.echo("stopped before the end: what was removed was expired; run it again to go on",
                       err=True)
            raise typer.Exit(EXIT_CHECK_FAILED)


def _print(reports: list[CompactReport], dry_run: bool) -> None:
    out = Table(title="replicator compact" + (" (dry run: nothing removed)" if dry_run else ""))
    for col in ("parent table", "dynamodb table", "items scanned", "items with expired entries",
                "expired entries", "removed", "written again (kept)", "time"):
        out.add_column(col)
    for r in reports:
        out.add_row(r.source, r.table, str(r.items_scanned), str(r.items_compacted),
                    str(r.entries_expired), str(r.entries_removed), str(r.entries_rewritten),
                    f"{r.seconds:.1f} s")
    Console().print(out)

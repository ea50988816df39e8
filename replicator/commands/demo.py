"""``replicator demo``: the migration guide end to end on the local stack."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from replicator.commands.common import ConfigOption, bootstrap, exit_on_error
from replicator.errors import ConfigError
from replicator.settings import Settings

if TYPE_CHECKING:
    from validators.reconcile import TableReport

# Differences seen while the pipeline still carries changes are compared again after this.
SETTLE_S = 3.0


def reconcile_tables(settings: Settings) -> list[TableReport]:
    """Every mapped table, MySQL against DynamoDB; each key compared counts for the gates."""
    from replicator.adapters.dynamodb import dynamodb_client
    from replicator.backfill.source import SnapshotSource
    from replicator.control import open_control_store
    from validators.reconcile import reconcile_table

    client = dynamodb_client(settings.dynamodb)
    with SnapshotSource(settings.mysql) as src, open_control_store(settings) as store:
        return [reconcile_table(settings, m, src, client, settle_s=SETTLE_S, record=store)
                for m in settings.tables]


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        config: ConfigOption = None,
        rows: Annotated[
            int, typer.Option(min=10, help="Users that exist before the migration starts.")
        ] = 3000,
        ops_per_s: Annotated[float, typer.Option(min=1, help="The application's write rate.")] = 40.0,
        soak_s: Annotated[
            float,
            typer.Option(min=1, help="Soak window of each gate (the guide's 24-72 h, shortened for a demo)."),
        ] = 15.0,
        keep: Annotated[bool, typer.Option(help="Keep the demo's database, topics and tables.")] = False,
        admin_user: Annotated[
            str,
            typer.Option(
                envvar="STACK_MYSQL_ADMIN_USER", help="MySQL user that may create the demo database."
            ),
        ] = "",
        admin_password: Annotated[
            str, typer.Option(envvar="STACK_MYSQL_ADMIN_PASSWORD", help="Its password.")
        ] = "",
        log_dir: Annotated[Path, typer.Option(help="Where the reader's and writer's logs go.")] = Path(
            ".stack/logs"
        ),
    ) -> None:
        """Run the five-phase migration on a demo shop database with a live workload.

        Creates a database, starts the real binlog reader and DynamoDB writer, backfills the
        existing rows while the application writes, proves DynamoDB equals MySQL row by row,
        walks the phases through their measured gates, and ends with an emergency rollback
        and the audit history. Needs the local stack (`make stack-up`); `make demo` does all.
        """
        settings = bootstrap(config)
        from replicator.demo import Demo, DemoOptions

        with exit_on_error():
            if not admin_user:
                raise ConfigError(
                    "--admin-user (or STACK_MYSQL_ADMIN_USER) is needed to create the demo database; "
                    "`make demo` sets it from .stack/env"
                )
            opts = DemoOptions(admin_user, admin_password, rows, ops_per_s, soak_s, keep, log_dir)
            code = Demo(settings, opts, compare=reconcile_tables).run()
        raise typer.Exit(code)

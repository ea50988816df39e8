"""``replicator demo``: the migration guide end to end on the local stack."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer

from replicator.commands.common import ConfigOption, bootstrap, exit_on_error
from replicator.errors import ConfigError
from replicator.health import require
from replicator.settings import Settings

if TYPE_CHECKING:
    from replicator.demo import SampleApp
    from validators.reconcile import TableReport

# Differences seen while the pipeline still carries changes are compared again after this.
SETTLE_S = 3.0
# The sample application sits in the source tree, next to the packages (not installed with them).
CHECKOUT = Path(__file__).resolve().parents[2]


def reconcile_tables(settings: Settings) -> list[TableReport]:
    """Every mapped table, MySQL against DynamoDB.

    Nothing is counted for the gates: the phase-3 gate judges the validations the application's
    client made, and a full comparison of a few thousand rows would drown them.
    """
    from replicator.adapters.dynamodb import dynamodb_client
    from replicator.backfill.source import SnapshotSource
    from validators.reconcile import reconcile_table

    client = dynamodb_client(settings.dynamodb)
    with SnapshotSource(settings.mysql) as src:
        return [reconcile_table(settings, m, src, client, settle_s=SETTLE_S) for m in settings.tables]


def sample_app() -> SampleApp:
    """The shop of ``examples/shop`` (service and load generator) as the demo's application."""
    if not (CHECKOUT / "examples" / "shop" / "__init__.py").is_file():
        raise ConfigError(f"the demo drives the sample application examples/shop of a source checkout, "
                          f"and {CHECKOUT} has none: run `make demo` from a clone of the repository")
    if str(CHECKOUT) not in sys.path:
        sys.path.append(str(CHECKOUT))  # after the installed packages: examples/ is all it adds
    from examples.shop import serve
    from examples.shop.load import LoadGenerator
    from replicator.demo import SampleApp

    return SampleApp(
        serve=serve,
        load=lambda url, workload, rate, threads: LoadGenerator(url, threads=threads, rate=rate,
                                                                workload=workload, seed=42))


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends the demo like Ctrl-C does: through its clean-up, not around it."""
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        config: ConfigOption = None,
        rows: Annotated[
            int, typer.Option(min=10, help="Users that exist before the migration starts.")
        ] = 3000,
        ops_per_s: Annotated[
            float, typer.Option(min=1, help="Requests/s the load generator sends the shop, reads and writes.")
        ] = 40.0,
        soak_s: Annotated[
            float,
            typer.Option(min=1, help="Soak window of each gate (the guide's 24-72 h, shortened for a demo)."),
        ] = 15.0,
        threads: Annotated[int, typer.Option(min=1, max=64, help="The load generator's threads.")] = 8,
        keep: Annotated[
            bool, typer.Option(help="Keep the demo's database, MySQL user, topics and tables.")
        ] = False,
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
        """Run the migration's phases on a demo shop with a live application on the client.

        Creates a database, starts the sample shop service (examples/shop, all its data access
        through replicator.client) and its load generator, starts the real binlog reader and
        DynamoDB writer, backfills the existing rows while the shop writes, proves DynamoDB
        equals MySQL row by row, walks phases 1 -> 4 through their measured gates showing the
        shop's errors and latency per phase, the client's validations and DynamoDB reads, checks
        the 4 -> 5 gates on those reads, and ends with an emergency rollback and the audit
        history. Needs the local stack (`make stack-up`); `make demo` does all.
        """
        settings = bootstrap(config)
        from replicator.demo import Demo, DemoOptions

        with exit_on_error():
            if not admin_user:
                raise ConfigError(
                    "--admin-user (or STACK_MYSQL_ADMIN_USER) is needed to create the demo database; "
                    "`make demo` sets it from .stack/env"
                )
            require(settings, ("mysql", "kafka", "dynamodb", "control"))
            opts = DemoOptions(admin_user, admin_password, rows, ops_per_s, soak_s, keep, log_dir, threads)
            signal.signal(signal.SIGTERM, _stop_on_sigterm)
            code = Demo(settings, opts, compare=reconcile_tables, app=sample_app()).run()
        raise typer.Exit(code)

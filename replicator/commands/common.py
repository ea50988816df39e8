"""What every sub-command shares: the --config option, start-up, and exit-code mapping."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import structlog
import typer

from replicator.errors import EXIT_USAGE, ReplicatorError
from replicator.health import System, check_tables_exist, require
from replicator.logs import configure_logging
from replicator.settings import Settings, load_settings

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c",
        help="YAML configuration file. REPLICATOR_* environment variables override it "
             "(nested keys with '__', e.g. REPLICATOR_MYSQL__HOST).",
        exists=False, dir_okay=False,
    ),
]


def bootstrap(config: Path | None) -> Settings:
    """Load settings once and configure logging; a bad option exits 2 naming it."""
    with exit_on_error():
        settings = load_settings(config)
    configure_logging(settings.log)
    return settings


@contextmanager
def exit_on_error() -> Iterator[None]:
    """Turn the product's exceptions into a clear message and the documented exit code."""
    try:
        yield
    except ReplicatorError as exc:
        structlog.get_logger().debug("exit", error=type(exc).__name__)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


def start_up(settings: Settings, systems: Iterable[System], *, tables: Sequence[str] | None = ()) -> None:
    """Before a sub-command's work: reach each of ``systems`` and, unless ``tables`` is empty,
    check that those mapped tables (None: all) exist in MySQL. A failure exits 2 naming the option."""
    with exit_on_error():
        require(settings, systems)
        if tables is None or tables:
            check_tables_exist(settings, tables)


def not_built(command: str, issue: str) -> NoReturn:
    typer.echo(
        f"replicator {command}: not built yet ({issue}); nothing was done.", err=True,
    )
    sys.exit(EXIT_USAGE)


def stub(command: str, issue: str, summary: str) -> Callable[[typer.Typer], None]:
    """Register a sub-command that exists in the operator surface but is not implemented."""

    def register(app: typer.Typer) -> None:
        @app.command(command, help=f"{summary}  [not built yet: exits 2]")
        def _cmd(config: ConfigOption = None) -> None:
            not_built(command, issue)

    return register

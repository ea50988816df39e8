"""``replicator status``: live dashboard."""

from __future__ import annotations

import time
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.live import Live

from replicator.commands.common import ConfigOption, bootstrap, exit_on_error


def register(app: typer.Typer) -> None:
    @app.command(
        "status",
        help=(
            "One screen with the migration's state, refreshed live.\n\n"
            "Phase, flags, epoch, who changed it, when and why; each gate of the next forward step "
            "(measured against its threshold, soak left); the reader's lag, the writer's and the "
            "validators' rates and errors, DynamoDB read errors, Kafka lag per table (writer and "
            "validator groups), dead letters, backfill progress, the live application clients and a "
            "switch of the write target in progress, with sparklines over the last minutes. Reads the "
            "control store, Kafka and (with --metrics) the processes' /metrics; writes nothing.\n\n"
            "--once prints one frame and exits; --json prints the same figures as JSON."
        ),
    )
    def status(
        config: ConfigOption = None,
        once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
        as_json: Annotated[bool, typer.Option(
            "--json", help="Print the figures as JSON once and exit.")] = False,
        interval_s: Annotated[float, typer.Option(
            "--interval", min=0.2, help="Seconds between refreshes.")] = 2.0,
        metrics: Annotated[list[str] | None, typer.Option(
            "--metrics", help="A process's /metrics URL to show (repeatable), e.g. "
                              "http://writer:9102/metrics.")] = None,
        rate_window_s: Annotated[float, typer.Option(
            "--rate-window", min=60, help="Rates are averaged over about this many seconds.")] = 300.0,
    ) -> None:
        settings = bootstrap(config)
        from replicator.control import open_control_store
        from replicator.phase.clock import SystemClock
        from replicator.phase.probes import GateChecker
        from replicator.status.figures import gather
        from replicator.status.render import History, frame
        from replicator.status.sources import KafkaOffsets, scrape

        with exit_on_error(), open_control_store(settings) as store:
            checker = GateChecker(settings, store, SystemClock())
            offsets = KafkaOffsets(settings.kafka)
            urls = list(metrics or ())

            def figures() -> dict[str, object]:
                return gather(settings, store, offsets, lambda target, state: checker.check(target, state),
                              time.time(), scrape=scrape, metrics_urls=urls, rate_window_s=rate_window_s)

            if as_json:
                typer.echo(orjson.dumps(figures(), option=orjson.OPT_INDENT_2).decode())
                return
            console = Console()
            if once:
                console.print(frame(figures()))
                return
            history = History()
            try:
                with Live(console=console, auto_refresh=False, screen=False) as live:
                    while True:
                        doc = figures()
                        history.add(doc)
                        live.update(frame(doc, history), refresh=True)
                        time.sleep(interval_s)
            except KeyboardInterrupt:
                return

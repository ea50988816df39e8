"""The ``replicator`` console script: parse, configure, call ``run_*()``; nothing else here."""

from __future__ import annotations

import typer

from replicator.commands import (
    backfill,
    check,
    compact,
    demo,
    phase,
    reconcile,
    reverse,
    run,
    status,
    validate,
    write,
)

app = typer.Typer(
    name="replicator",
    help=(
        "Zero-downtime MySQL -> DynamoDB migration driven by CDC.\n\n"
        "The binlog reader (run) publishes every row change to Kafka; the writer (write) applies them "
        "idempotently to DynamoDB; validators compare both sides; the phase controller (phase) moves the "
        "application through the five migration phases with audited, gated transitions.\n\n"
        "Exit codes: 0 ok, 1 a check or gate failed, 2 bad usage or configuration, 3 fatal data condition."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

for module in (run, write, reverse, validate, backfill, reconcile, compact, phase, status, demo, check):
    module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

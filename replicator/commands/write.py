"""``replicator write``: the DynamoDB writer (Kafka -> DynamoDB)."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from replicator.commands.common import ConfigOption, bootstrap, exit_on_error, start_up


def register(app: typer.Typer) -> None:
    @app.command(
        "write",
        help=(
            "Apply change events from Kafka to DynamoDB, idempotently and in order.\n\n"
            "Consumes the mapped tables' topics in the writer consumer group (<topic_prefix>.writer, "
            "read_committed). Every write is conditional on the stored _version being lower, deletes "
            "leave tombstones with a TTL, and offsets are committed only after DynamoDB acknowledged "
            "the writes they cover. Unmappable events go to <topic_prefix>.__deadletter. Applies only "
            "in phases 2-4 (dual_write_enabled); in other phases it waits without consuming."
        ),
    )
    def write(
        config: ConfigOption = None,
        create_tables: Annotated[bool, typer.Option(
            "--create-tables", help="Create missing DynamoDB tables (on-demand billing, key schema "
                                    "from the mapping, TTL on _ttl). Without it a missing table "
                                    "exits 2.")] = False,
        apply_mode: Annotated[str, typer.Option(
            "--apply-mode", help="put: one conditional PutItem per item (half the write capacity of a "
                                 "transaction on AWS); transact: TransactWriteItems of up to 100 "
                                 "conditional puts (fewer requests, less writer CPU); auto (default): "
                                 "put against AWS, transact against any other dynamodb.endpoint_url "
                                 "(DynamoDB Local).")] = "auto",
        instance_id: Annotated[str | None, typer.Option(
            "--instance-id", help="Static consumer-group member id (group.instance.id): a restarted "
                                  "writer with the same id gets its partitions back at once. Give each "
                                  "replica its own (e.g. the pod name).")] = None,
    ) -> None:
        settings = bootstrap(config)
        if apply_mode not in ("auto", "transact", "put"):
            typer.echo(f"error: --apply-mode must be auto, transact or put, got {apply_mode!r}", err=True)
            raise typer.Exit(2)
        mode: Literal["transact", "put"] | None = (
            None if apply_mode == "auto" else "put" if apply_mode == "put" else "transact")
        start_up(settings, ("mysql", "kafka", "dynamodb", "control"), tables=None)
        from consumers.writer.service import run_writer

        with exit_on_error():
            run_writer(settings, create_tables=create_tables, mode=mode, instance_id=instance_id)

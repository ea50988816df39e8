"""``replicator reverse``: reverse replication, DynamoDB Streams -> MySQL (phase 5's way back)."""

from __future__ import annotations

from typing import Annotated

import typer

from replicator.commands.common import ConfigOption, bootstrap, exit_on_error, start_up


def register(app: typer.Typer) -> None:
    @app.command("reverse")
    def reverse(
        config: ConfigOption = None,
        metrics_port: Annotated[int | None, typer.Option(
            "--metrics-port", min=0, max=65535,
            help="Serve Prometheus /metrics (replicator_reverse_*) on this port "
                 "(default: metrics.port; 0 = off).")] = None,
        page_size: Annotated[int, typer.Option(
            min=1, max=1000, help="Stream records read per GetRecords call, applied to MySQL as one "
                                  "transaction.")] = 1000,
        poll_interval_s: Annotated[float, typer.Option(
            min=0.01, help="Wait between rounds that found no new record.")] = 0.25,
        retry_s: Annotated[float, typer.Option(
            min=0, help="How long a change MySQL refuses on a duplicate or foreign key (another shard "
                        "may not have applied its part yet) is tried again before it becomes a dead "
                        "letter; its shard waits meanwhile.")] = 10.0,
        settle_s: Annotated[float, typer.Option(
            min=0, help="How long after DynamoDB acknowledges a write its record is assumed to be in "
                        "the stream: caught_up_at (the drain check of the switch back to phase 4) is "
                        "when the reads that found every shard at its end were sent, minus this.")] = 0.5,
    ) -> None:
        """Apply the application's phase-5 writes (items with _origin = app) from the DynamoDB
        Streams of every mapped table to MySQL, so that a rollback to phase 4 loses none of them.

        Upserts every mapped column by primary key (INSERT ... ON DUPLICATE KEY UPDATE) and
        deletes tombstoned or removed items, through the inverse mapping, with the application's
        MySQL user (client.mysql_user, else mysql.user). Records written by the CDC pipeline or
        the backfill are skipped, so its own writes, which come back through the binlog, are never
        applied again. Shards are read parent before child; each shard's checkpoint (control-store
        marker `reverse.checkpoint.<table>`) moves only after MySQL committed the records it covers,
        so a restart, kill -9 included, loses nothing and re-applies harmlessly. An item MySQL
        cannot hold (too long, out of range, an attribute with no column, a lasting duplicate) is a
        dead letter (marker `reverse.deadletter.<table>.<key>`), counted and logged with marker
        DualWrite. Progress, lag and dead letters go to the reverse.heartbeat marker, which the
        switch back to phase 4 reads.

        Exit codes: 0 stopped by a signal, 2 bad configuration (a mapped table without a
        NEW_AND_OLD_IMAGES stream: `replicator write --create-tables` turns it on), 3 stream records
        trimmed before they were applied (the message says what to do). Transient failures of
        MySQL, DynamoDB or the control store are retried.
        """
        settings = bootstrap(config)
        start_up(settings, ("mysql", "dynamodb", "control"), tables=None)
        with exit_on_error():
            from consumers.reverse.runner import ReverseOptions
            from consumers.reverse.service import run_reverse

            run_reverse(settings, metrics_port=metrics_port, options=ReverseOptions(
                page_size=page_size, poll_interval_s=poll_interval_s, retry_s=retry_s, settle_s=settle_s))

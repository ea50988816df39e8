"""``replicator run``: the binlog reader (binlog -> Kafka), until SIGTERM/SIGINT."""

from __future__ import annotations

from typing import Annotated

import structlog
import typer

from replicator.commands.common import ConfigOption, bootstrap, exit_on_error, start_up
from replicator.health import missing_tables


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        config: ConfigOption = None,
        from_: Annotated[str | None, typer.Option(
            "--from",
            help="Where to start when no checkpoint exists: FILE:POS (mysql-bin.000003:1234), a MariaDB GTID "
                 "position (0-1-42) or a MySQL GTID set (uuid:1-23). Default: the current binlog head. "
                 "Ignored (with a warning) once a checkpoint exists.")] = None,
        metrics_port: Annotated[int | None, typer.Option(
            "--metrics-port",
            help="Serve Prometheus /metrics on this port (overrides metrics.port; 0 = off).",
            min=0, max=65535)] = None,
        max_batch_rows: Annotated[int, typer.Option(
            help="Commit a Kafka transaction once it holds this many row changes.", min=1)] = 5000,
        max_batch_ms: Annotated[int, typer.Option(
            help="... or once it has been open this many milliseconds.", min=1)] = 100,
        wait_for_tables: Annotated[bool, typer.Option(
            "--wait-for-tables",
            help="Start even when a mapped table does not exist yet, and stream its rows from its CREATE "
                 "TABLE on (a warning names each such table). Without it, a missing table exits 2.")] = False,
    ) -> None:
        """Stream the MySQL binlog to Kafka, one change event per row, with exactly-once checkpoints.

        Exit codes: 0 stopped by a signal, 2 bad configuration (MySQL, Kafka or the control store
        unreachable at start-up, refused credentials, missing grants, a mapped table that does not
        exist), 3 fatal data condition (purged binlog, binlog not ROW/FULL, a mapped table without a
        primary key or with a cascading foreign key, TRUNCATE of a mapped table). Once streaming,
        transient failures are retried.
        """
        settings = bootstrap(config)
        start_up(settings, ("mysql", "kafka", "control"), tables=() if wait_for_tables else None)
        with exit_on_error():
            for source in missing_tables(settings) if wait_for_tables else ():
                structlog.get_logger("replicator.reader").warning(
                    "mapped_table_missing", table=source,
                    waiting="its rows are streamed from its CREATE TABLE on (--wait-for-tables)")
            from replicator.reader.gtid import parse_from
            from replicator.reader.runner import ReaderOptions
            from replicator.reader.service import run_reader

            run_reader(settings, start_from=parse_from(from_) if from_ else None, metrics_port=metrics_port,
                       options=ReaderOptions(max_batch_rows=max_batch_rows, max_batch_s=max_batch_ms / 1000))

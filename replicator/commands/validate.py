"""``replicator validate``: the stream validator."""

from __future__ import annotations

from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from replicator.commands.common import ConfigOption, bootstrap, exit_on_error, start_up
from replicator.diff import describe_mismatch
from replicator.errors import EXIT_CHECK_FAILED


def register(app: typer.Typer) -> None:
    @app.command(
        "validate",
        help=(
            "Compare each changed row's MySQL state with its DynamoDB item, as the changes stream by.\n\n"
            "Reads the mapped tables' topics in its own consumer group (<topic_prefix>.validator): run N "
            "replicas and they share the partitions. Of each batch, the newest change of each key is "
            "kept, and a share validation.sample_ratio of those keys (a stable hash of key and version). "
            "A key is compared only once the writer has applied its change (the item's _version, or the "
            "writers' applied offsets); a difference is reported only once the pipeline has applied "
            "everything MySQL held when the row was read (bounded by validation.recheck_wait_s), so "
            "replication lag is counted as unverified, never as a failure.\n\n"
            "Each difference is logged as `Data validation failed` with the differing columns and their "
            "class; passed and failed keys are counted into validation.passed / validation.failed in "
            "the control store (the phase 3->4 gate's error rate). Offsets are committed after a batch "
            "is judged, so a restart resumes where it stopped. Compares in phases 2-4 only (while the "
            "pipeline writes to DynamoDB). Metrics on metrics.port."
        ),
    )
    def validate(
        config: ConfigOption = None,
        instance_id: Annotated[str | None, typer.Option(
            "--instance-id", help="Static consumer-group member id (group.instance.id), e.g. the pod name: "
                                  "a restarted replica gets its partitions back at once.")] = None,
        once: Annotated[bool, typer.Option(
            "--once", help="Read the topics to their end, then print a report and exit: 0 when no key "
                           "failed, 1 otherwise.")] = False,
        idle_s: Annotated[float, typer.Option(
            "--idle-s", min=0.5, help="With --once: the end is when no message has come for this long.")
        ] = 10.0,
        as_json: Annotated[bool, typer.Option("--json", help="With --once: the report as JSON.")] = False,
        show: Annotated[int, typer.Option(min=0, help="With --once: how many failed keys to list.")] = 20,
    ) -> None:
        settings = bootstrap(config)
        start_up(settings, ("mysql", "kafka", "dynamodb", "control"), tables=None)
        from validators.service import run_validator

        with exit_on_error():
            totals = run_validator(settings, instance_id=instance_id, once=once, idle_s=idle_s)
        if not once:
            return
        failures = [{"table": v.check.source, "key": v.check.key, "kind": v.reason,
                     "fields": v.mismatch.fields if v.mismatch else {}, "version": v.check.version}
                    for v in totals.failures[:show]]
        if as_json:
            typer.echo(orjson.dumps({**totals.to_doc(), "failures": failures},
                                    option=orjson.OPT_INDENT_2).decode())
        else:
            summary = Table(title="replicator validate")
            for col in ("events", "keys compared", "passed", "failed", "unverified (lag)", "skipped"):
                summary.add_column(col)
            t = totals
            summary.add_row(str(t.events), str(t.keys), str(t.passed),
                            f"[red]{t.failed}[/]" if t.failed else "[green]0[/]", str(t.unverified),
                            str(t.skipped))
            console = Console()
            console.print(summary)
            for v in totals.failures[:show]:
                if v.mismatch is not None:
                    console.print(f"  {describe_mismatch(v.mismatch)}", markup=False)
        if totals.failed:
            raise typer.Exit(EXIT_CHECK_FAILED)

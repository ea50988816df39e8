"""Counter and marker names shared by every process that reports to the control store.

Writers of these names: the DynamoDB writer (``dual_write.*``, ``writer.heartbeat``), the
validators (``validation.*``), the client shim (``dynamodb_read.*``), the binlog reader
(``reader.heartbeat``), the backfill (``backfill.*``) and the reverse replication
(``reverse.*``). The phase controller's gates and the write-target switch read them.
The applied watermark (``watermark.*``: the reader's and each writer's) is read by
:class:`replicator.control.watermark.PipelineWatermark`; its formats are documented there.
"""

from __future__ import annotations

# Counters (per-minute buckets, summed over a gate's window).
DUAL_WRITE_APPLIED = "dual_write.applied"
DUAL_WRITE_FAILED = "dual_write.failed"
VALIDATION_PASSED = "validation.passed"
VALIDATION_FAILED = "validation.failed"
DYNAMODB_READ_OK = "dynamodb_read.ok"
DYNAMODB_READ_FAILED = "dynamodb_read.failed"

COUNTERS = (
    DUAL_WRITE_APPLIED, DUAL_WRITE_FAILED,
    VALIDATION_PASSED, VALIDATION_FAILED,
    DYNAMODB_READ_OK, DYNAMODB_READ_FAILED,
)

# Markers (small JSON documents).
#: {"recent": [{"table", "key", "reason", "error", "at"}, ...]}: the writer's latest dead letters
#: (at most 20), which the dual-write gate names.
WRITER_DEADLETTERS = "writer.deadletters"
WRITER_HEARTBEAT = "writer.heartbeat"    # {"ts": epoch_s, "group": str, "events_per_s": float}
READER_HEARTBEAT = "reader.heartbeat"    # {"ts": epoch_s, "lag_s": float, "position": ...}
BACKFILL_COMPLETE = "backfill.complete"  # {"complete": bool, "tables": [...], "at": epoch_s}
BACKFILL_PREFIX = "backfill."
# The applied watermark: one prefix, so that a reader of both gets them in one round trip.
WATERMARK_PREFIX = "watermark."
READER_WATERMARK = "watermark.reader"  # {"ts", "gtid_position", "version", "position", "offsets"}
WRITER_OFFSETS_PREFIX = "watermark.writer."  # + member: {"ts", "member", "group", "offsets"}
# The reverse replication (DynamoDB Streams -> MySQL, phase 5), see consumers/reverse.
# {"ts", "lag_s", "records_behind", "caught_up_at", "deadletters", "deadletter_keys", ...}
REVERSE_HEARTBEAT = "reverse.heartbeat"
# The reconciliation's progress, one marker per table (validators/reconcile_service.py):
# {"table", "stage", "done", "total", "started_at", "at", "finished", "ok", "differences"}
RECONCILE_PREFIX = "reconcile."
RECONCILE_RUN = "reconcile.run"  # {"tables": [...], "started_at", "done": {table: report}}: --resume
# The stream validator: one marker per consumer-group member (validators/stream.py).
# {"ts", "member", "group", "paused", "events", "keys", "passed", "failed", "unverified", "skipped"}
VALIDATOR_PREFIX = "validator."
REVERSE_CHECKPOINT_PREFIX = "reverse.checkpoint."  # + DynamoDB table
REVERSE_DEADLETTER_PREFIX = "reverse.deadletter."  # + source + "." + key


def backfill_marker(source: str) -> str:
    """Progress marker of one table's backfill (``source`` is ``database.table``).

    {"cursor": [pk values] | None, "done": int, "total_estimate": int, "complete": bool,
    "started_at": epoch_s, "finished_at": epoch_s | None}
    """
    return f"{BACKFILL_PREFIX}{source}"


def writer_offsets_marker(member: str) -> str:
    """The offsets one writer process (consumer-group member) has applied and committed."""
    return f"{WRITER_OFFSETS_PREFIX}{member}"


def reverse_checkpoint_marker(table: str) -> str:
    """The reverse replication's checkpoint of one DynamoDB table's stream (``table``: prefix included).

    {"stream_arn": str, "shards": {shard id: last applied sequence number | null},
    "finished": [shard ids read to their end], "ts": epoch_s}
    """
    return f"{REVERSE_CHECKPOINT_PREFIX}{table}"


def reverse_deadletter_marker(source: str, key: str) -> str:
    """One item the reverse replication could not write to MySQL (``source``: database.table,
    ``key``: the row's primary key as text). {"table", "key", "reason", "message", "version",
    "shard", "sequence", "at"}; deleted once a later change of that row is applied."""
    return f"{REVERSE_DEADLETTER_PREFIX}{source}.{key}"


def validator_marker(member: str) -> str:
    """The heartbeat and running totals of one stream-validator process (consumer-group member)."""
    return f"{VALIDATOR_PREFIX}{member}"


def reconcile_marker(source: str) -> str:
    """Progress of the last (or running) reconciliation of one table (``database.table``)."""
    return f"{RECONCILE_PREFIX}{source}"

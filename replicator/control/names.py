"""Counter and marker names shared by every process that reports to the control store.

Writers of these names: the DynamoDB writer (``dual_write.*``, ``writer.heartbeat``), the
validators (``validation.*``), the client shim (``dynamodb_read.*``), the binlog reader
(``reader.heartbeat``) and the backfill (``backfill.*``). The phase controller's gates read them.
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
WRITER_HEARTBEAT = "writer.heartbeat"    # {"ts": epoch_s, "group": str}
READER_HEARTBEAT = "reader.heartbeat"    # {"ts": epoch_s, "lag_s": float, "position": ...}
BACKFILL_COMPLETE = "backfill.complete"  # {"complete": bool, "tables": [...], "at": epoch_s}
BACKFILL_PREFIX = "backfill."
# The applied watermark: one prefix, so that a reader of both gets them in one round trip.
WATERMARK_PREFIX = "watermark."
READER_WATERMARK = "watermark.reader"  # {"ts", "gtid_position", "version", "position", "offsets"}
WRITER_OFFSETS_PREFIX = "watermark.writer."  # + member: {"ts", "member", "group", "offsets"}


def backfill_marker(source: str) -> str:
    """Progress marker of one table's backfill (``source`` is ``database.table``).

    {"cursor": [pk values] | None, "done": int, "total_estimate": int, "complete": bool,
    "started_at": epoch_s, "finished_at": epoch_s | None}
    """
    return f"{BACKFILL_PREFIX}{source}"


def writer_offsets_marker(member: str) -> str:
    """The offsets one writer process (consumer-group member) has applied and committed."""
    return f"{WRITER_OFFSETS_PREFIX}{member}"

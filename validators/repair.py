"""``reconcile --repair``: differing rows go back through the pipeline as fresh snapshot events.

Like the backfill (:mod:`replicator.backfill`), the rows are read in one consistent snapshot
together with the binlog position that splits it from the stream and the fence row's
generation, and every event carries that position's snapshot version. The writer applies them
with its version-conditional write, never a blind overwrite: a change the snapshot did not see
has a higher version and still wins, and an item that already holds a newer version is left
alone. A row MySQL no longer has becomes a delete (``op: "d"``, the item's row as its before
image), so the writer leaves a tombstone at that version.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import structlog

from replicator.backfill.publish import SnapshotPublisher, wait_until_applied
from replicator.backfill.source import SnapshotSource
from replicator.catalog import TableShape
from replicator.errors import ConfigError
from replicator.events import ChangeEvent, Position, TxInfo, schema_fingerprint, snapshot_version
from replicator.mapping.mapper import TableMapper
from replicator.settings import Settings
from replicator.topics import table_topic
from validators.reconcile_ranges import Found

log = structlog.get_logger("reconcile")


@dataclass(frozen=True)
class RepairResult:
    published: int
    version: int
    applied: bool  # the writer's committed offsets passed every event


def repair_events(shape: TableShape, mapper: TableMapper, found: list[Found], src: SnapshotSource
                  ) -> tuple[list[ChangeEvent], int]:
    """The events that make DynamoDB match MySQL for ``found``, and their version."""
    chunk = src.read_keys(shape, [f.pk for f in found])
    version = snapshot_version(chunk.binlog_file, chunk.binlog_offset, chunk.generation)
    rows = {mapper.key_text(r): r for r in chunk.rows}
    fingerprint = schema_fingerprint(shape.columns)
    now_ms = int(time.time() * 1000)
    pos = Position(chunk.binlog_file, chunk.binlog_offset, 0, None)
    events = []
    for i, f in enumerate(found):
        row = rows.get(f.difference.key)
        tx = TxInfo(f"repair:{chunk.binlog_file}:{chunk.binlog_offset}", i)
        if row is not None:
            pk = {k: row[k] for k in shape.pk}
            events.append(ChangeEvent("r", shape.db, shape.table, pk, None, row, pos, version, now_ms, tx,
                                      fingerprint, shape.columns))
        elif f.dynamodb is not None:
            image = f.dynamodb
            pk = {k: image.get(k) for k in shape.pk}
            events.append(ChangeEvent("d", shape.db, shape.table, pk, image, None, pos, version, now_ms, tx,
                                      fingerprint, shape.columns))
    return events, version


def repair(settings: Settings, shape: TableShape, mapper: TableMapper, found: list[Found], *,
           wait_s: float = 120.0, stop: threading.Event | None = None) -> RepairResult:
    """Publish the repair events of ``found`` and wait (up to ``wait_s``) for the writer to apply them."""
    if not found:
        return RepairResult(0, 0, True)
    from replicator.control import open_control_store

    with open_control_store(settings) as store:
        phase = store.get_phase()
    if not phase.dual_write_enabled:
        raise ConfigError(f"--repair sends rows through the pipeline, whose writer applies them only in "
                          f"phases 2-4; the phase is {phase.phase}")
    with SnapshotSource(settings.mysql, fence_table=settings.cutover.fence_table) as src:
        events, version = repair_events(shape, mapper, found, src)
    topic = table_topic(settings.kafka.topic_prefix, shape.source)
    publisher = SnapshotPublisher(settings)
    publisher.start()
    try:
        for e in events:
            publisher.publish(topic, e.key_bytes(), e.to_json())
        publisher.flush()
    finally:
        publisher.close()
    log.info("repair_published", table=shape.source, events=len(events), version=version)
    applied = wait_until_applied(settings, dict(publisher.acked), timeout_s=wait_s,
                                 stop=stop or threading.Event())
    return RepairResult(len(events), version, applied)

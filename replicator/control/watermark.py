"""The pipeline's applied watermark: has every change up to a MySQL position reached DynamoDB?

Read-your-writes (phase 4: after a write with GTID ``g``, wait until ``g`` is applied) and
lag-aware validation (phase 3: after reading MySQL at ``@@gtid_binlog_pos``, wait until the
pipeline has applied that far) ask the same question of two kinds of control-store markers,
both under :data:`~replicator.control.names.WATERMARK_PREFIX`, so one ``list_markers`` reads
them all::

    watermark.reader            written by the binlog reader (replicator.reader.watermark)
      {"ts": epoch_s, "gtid_position": "0-1-1234,1-2-77", "version": 39582418,
       "position": "mysql-bin.000009:1234", "offsets": {"<topic>:<partition>": last_data_offset}}
    watermark.writer.<member>   written by each DynamoDB writer process (consumers.writer.watermark)
      {"ts": epoch_s, "member": str, "group": str, "offsets": {"<topic>:<partition>": next_offset}}

What each claims, and why a stale one is never wrong (only conservative):

- reader: every change of a mapped table committed in MySQL at or before ``gtid_position``
  (each domain up to its sequence number) and before binlog ``version`` is in Kafka, in its
  table topic, at an offset ``<= offsets[topic:partition]``. ``offsets`` lists every partition
  of every table topic the reader publishes to; ``-1`` (generally: below the log start) when
  the partition holds no data. Data in Kafka only accumulates, so the claim stays true.
- writer: every record of a partition below ``next_offset`` has been applied to DynamoDB (or
  dead-lettered, DESIGN §3.2) by that member or by the group before it. Writes are
  version-conditional, so a later state of an item is only ever newer.

**Applied through a target for sources S** (:meth:`WatermarkSnapshot.applied_through`):

1. the reader's marker covers the target: each domain of a GTID target at a sequence number
   ``<=`` the reader's for that domain (a domain the reader has not seen is not covered), and a
   ``version`` target whose binlog base (:func:`replicator.events.split_version`) is ``<=`` the
   reader's (the generation is not a position: it is left out of the comparison);
2. each table topic of S is listed in the reader's ``offsets`` (at least one partition; a topic
   the reader does not list at all is not applied: that reader does not carry the table yet);
3. for each listed partition with ``last_data_offset >= 0``: the largest ``next_offset`` over
   all writer members is ``> last_data_offset``. A partition of a listed topic that the reader
   does not list has received nothing from the reader up to its position: applied.

The maximum over members is sound because each member's claim is true on its own; the
component-wise maximum of true claims is true.

What "applied" does not promise: an event that cannot be mapped is dead-lettered (DESIGN §3.2)
and counts as applied. Changes committed before the reader's *first* start position are not
carried by the stream at all: they reach DynamoDB through the backfill, which the 2 -> 3 gate
requires complete; the watermark counts them as covered, so for rows older than the pipeline it
answers correctly from phase 3 on (and in phase 2 once their table's backfill is complete).

Limits: MariaDB GTIDs with ``gtid_strict_mode`` (sequence numbers increase along the binlog
within a domain); a MySQL GTID set is not parsed (use ``version``, e.g. of ``SHOW MASTER
STATUS`` read after the write). A ``version`` target right after a binlog rotation is covered
only once the reader has checkpointed a transaction of the new file.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from replicator.control import names
from replicator.control.base import ControlStore
from replicator.errors import ClientUsageError, ControlStoreUnavailable, UnknownTableError
from replicator.events import split_version
from replicator.settings import Settings
from replicator.topics import table_topic

__all__ = [
    "PipelineWatermark", "ReaderMark", "TopicPartition", "WatermarkSnapshot", "covers", "offsets_from_doc",
    "offsets_to_doc", "parse_gtid_position",
]

log = structlog.get_logger("replicator.control.watermark")

TopicPartition = tuple[str, int]
_GTID = re.compile(r"^(\d+)-(\d+)-(\d+)$")


# --------------------------------------------------------------------------- pure parts

def parse_gtid_position(text: str) -> dict[int, int]:
    """``"0-1-1234,1-2-77"`` (a ``gtid_binlog_pos``) or ``"0-1-1234"`` -> ``{domain: seq}``.

    An empty text is the empty position. Raises ValueError for anything else (a MySQL GTID set).
    """
    out: dict[int, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        m = _GTID.match(part)
        if m is None:
            raise ValueError(f"{text!r} is not a MariaDB GTID position (domain-server-sequence[,...])")
        domain, seq = int(m[1]), int(m[3])
        out[domain] = max(out.get(domain, 0), seq)
    return out


def covers(position: str | Mapping[int, int], target: str | Mapping[int, int]) -> bool:
    """True when every domain of ``target`` is in ``position`` at the same or a later sequence."""
    pos = parse_gtid_position(position) if isinstance(position, str) else position
    tgt = parse_gtid_position(target) if isinstance(target, str) else target
    return all(pos.get(domain, -1) >= seq for domain, seq in tgt.items())


def offsets_to_doc(offsets: Mapping[TopicPartition, int]) -> dict[str, int]:
    """``{(topic, partition): offset}`` -> the markers' ``{"topic:partition": offset}``."""
    return {f"{topic}:{partition}": int(offset) for (topic, partition), offset in sorted(offsets.items())}


def offsets_from_doc(doc: Mapping[str, Any]) -> dict[TopicPartition, int]:
    """The inverse of :func:`offsets_to_doc` (topic names cannot hold ``:``). ValueError if malformed."""
    out: dict[TopicPartition, int] = {}
    for key, offset in doc.items():
        topic, sep, partition = str(key).rpartition(":")
        if not sep or not topic:
            raise ValueError(f"bad offsets key {key!r} (expected topic:partition)")
        out[(topic, int(partition))] = int(offset)
    return out


def _binlog_base(version: int) -> int:
    """A version without its generation: binlog positions are compared, never generations
    (docs/design.md). The reader's marker holds its checkpoint's base; a target may be an event's
    version. A negative version (a marker without a position) stays as it is."""
    return split_version(version)[1] if version >= 0 else version


@dataclass(frozen=True)
class ReaderMark:
    """The reader's marker, parsed (``gtid_position`` is kept as text: parsed when a GTID is asked)."""

    gtid_position: str
    version: int
    offsets: dict[TopicPartition, int]
    ts: float = 0.0

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> ReaderMark:
        """Raises ValueError (or KeyError/TypeError as ValueError) for a malformed marker."""
        try:
            return cls(gtid_position=str(doc.get("gtid_position") or ""), version=int(doc["version"]),
                       offsets=offsets_from_doc(doc["offsets"]), ts=float(doc.get("ts", 0.0)))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed reader watermark: {exc!r}") from exc


@dataclass(frozen=True)
class WatermarkSnapshot:
    """The markers as read at one instant; pure decisions over them."""

    reader: ReaderMark | None
    applied: dict[TopicPartition, int] = field(default_factory=dict)  # max next offset over writers

    @classmethod
    def from_markers(cls, markers: Mapping[str, Mapping[str, Any]]) -> WatermarkSnapshot:
        """From ``list_markers(WATERMARK_PREFIX)``; a malformed marker is ignored (conservative)."""
        reader: ReaderMark | None = None
        applied: dict[TopicPartition, int] = {}
        for name, doc in markers.items():
            try:
                if name == names.READER_WATERMARK:
                    reader = ReaderMark.from_doc(doc)
                elif name.startswith(names.WRITER_OFFSETS_PREFIX):
                    for tp, offset in offsets_from_doc(doc.get("offsets") or {}).items():
                        if offset > applied.get(tp, -1):
                            applied[tp] = offset
            except ValueError as exc:
                log.warning("watermark_marker_ignored", marker=name, error=str(exc))
        return cls(reader, applied)

    def position_covers(self, *, gtid: Mapping[int, int] | None = None, version: int | None = None) -> bool:
        if self.reader is None:
            return False
        if version is not None and _binlog_base(self.reader.version) < _binlog_base(version):
            return False
        if gtid is not None:
            try:
                return covers(self.reader.gtid_position, gtid)
            except ValueError:  # a MySQL reader's position: only versions are comparable
                return False
        return True

    def behind(self, topics: Iterable[str]) -> dict[TopicPartition, tuple[int, int | None]]:
        """Partitions of ``topics`` not yet applied: ``(last_data_offset, max writer next offset)``.

        A topic the reader does not list at all appears as ``(topic, -1): (-1, None)``.
        """
        out: dict[TopicPartition, tuple[int, int | None]] = {}
        listed = self.reader.offsets if self.reader is not None else {}
        for topic in topics:
            parts = {tp: last for tp, last in listed.items() if tp[0] == topic}
            if not parts:
                out[(topic, -1)] = (-1, None)
                continue
            for tp, last in parts.items():
                if last < 0:
                    continue
                done = self.applied.get(tp)
                if done is None or done <= last:
                    out[tp] = (last, done)
        return out

    def applied_through(self, topics: Iterable[str], *, gtid: Mapping[int, int] | None = None,
                        version: int | None = None) -> bool:
        """The rule of the module docstring."""
        return self.position_covers(gtid=gtid, version=version) and not self.behind(topics)


# --------------------------------------------------------------------------- on a control store

class PipelineWatermark:
    """Answers "applied through?" from the control store: one ``list_markers`` per question.

    ``sources`` are mapped tables (``database.table``); at least one of ``gtid`` (a MariaDB GTID
    or ``gtid_binlog_pos``) and ``version`` (a binlog version, :func:`replicator.events.binlog_version`)
    is required. A wrong argument is a :class:`~replicator.errors.ClientUsageError`.
    """

    def __init__(self, store: ControlStore, settings: Settings) -> None:
        self._store = store
        prefix = settings.kafka.topic_prefix
        self._topics = {t.source: table_topic(prefix, t.source) for t in settings.tables}

    def snapshot(self) -> WatermarkSnapshot:
        """The markers now (raises :class:`ControlStoreUnavailable` when the store is down)."""
        return WatermarkSnapshot.from_markers(self._store.list_markers(names.WATERMARK_PREFIX))

    def applied_through(self, sources: Sequence[str], *, gtid: str | None = None,
                        version: int | None = None) -> bool:
        topics, target = self._question(sources, gtid, version)
        return self.snapshot().applied_through(topics, gtid=target, version=version)

    def wait_applied(self, sources: Sequence[str], *, gtid: str | None = None, version: int | None = None,
                     timeout_s: float, poll_s: float = 0.02, stop: threading.Event | None = None) -> bool:
        """Poll until applied (True) or ``timeout_s`` passed or ``stop`` was set (False).

        A control store that does not answer is waited out like a pipeline that lags (logged
        once per wait): the answer is then False at the deadline, never a guess.
        """
        topics, target = self._question(sources, gtid, version)
        deadline = time.monotonic() + timeout_s
        logged = False
        while True:
            try:
                if self.snapshot().applied_through(topics, gtid=target, version=version):
                    return True
            except ControlStoreUnavailable as exc:
                if not logged:
                    log.warning("watermark_unreadable", error=str(exc))
                    logged = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            pause = min(poll_s, remaining)
            if stop is not None:
                if stop.wait(pause):
                    return False
            else:
                time.sleep(pause)

    def _question(self, sources: Sequence[str], gtid: str | None,
                  version: int | None) -> tuple[list[str], dict[int, int] | None]:
        if isinstance(sources, str):
            raise ClientUsageError(f"sources must be a list of tables, got the string {sources!r}")
        unknown = [s for s in sources if s not in self._topics]
        if unknown:
            raise UnknownTableError(f"{', '.join(unknown)} not mapped (tables[].source of the config): "
                                    "the pipeline carries no watermark for it")
        if gtid is None and version is None:
            raise ClientUsageError("applied_through needs a target: gtid= (e.g. @@last_gtid) or version=")
        target: dict[int, int] | None = None
        if gtid is not None:
            try:
                target = parse_gtid_position(gtid)
            except ValueError as exc:
                raise ClientUsageError(f"gtid={gtid!r}: {exc}; for MySQL pass version= instead") from exc
        return [self._topics[s] for s in sources], target

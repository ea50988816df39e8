"""The reader's checkpoint: where the binlog resumes after the last complete MySQL transaction.

A checkpoint is written in the same Kafka transaction as the events it covers (see
:mod:`replicator.reader.runner`), to the compacted topic ``<prefix>.__checkpoints`` with the
transactional id as key, so a ``read_committed`` read of the last record for that key is
exactly the position after the last MySQL transaction whose events are visible. Pure.

``generation`` is the version generation in force at that position (:mod:`replicator.fence`:
the MySQL generation of the last fence row before it), so a restart tags the events after it
as the first run would have. Records written before generations existed read as 0, which is
what every event carried then.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from replicator.errors import CorruptCheckpointError

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True, slots=True)
class Checkpoint:
    file: str  # binlog file of the next event to read
    offset: int  # position of the next event to read (after the last complete transaction)
    gtid: str | None = None  # GTID of the last complete transaction, if the server has GTIDs
    gtid_position: str = ""  # MariaDB gtid_binlog_pos form (per domain); MySQL: the last GTID
    ts_ms: int = 0  # commit time of that transaction
    server_id: int = 0
    generation: int = 0  # version generation of the events after this position

    def describe(self) -> str:
        return f"{self.file}:{self.offset}" + (f" (gtid {self.gtid})" if self.gtid else "")

    def to_json(self) -> bytes:
        return orjson.dumps({
            "format": CHECKPOINT_FORMAT, "file": self.file, "offset": self.offset, "gtid": self.gtid,
            "gtid_position": self.gtid_position, "ts_ms": self.ts_ms, "server_id": self.server_id,
            "generation": self.generation,
        })

    @classmethod
    def from_json(cls, data: bytes, *, where: str = "the checkpoint topic") -> Checkpoint:
        try:
            doc = orjson.loads(data)
            if doc.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"unknown format {doc.get('format')!r}")
            return cls(file=str(doc["file"]), offset=int(doc["offset"]), gtid=doc.get("gtid"),
                       gtid_position=str(doc.get("gtid_position") or ""), ts_ms=int(doc.get("ts_ms", 0)),
                       server_id=int(doc.get("server_id", 0)), generation=int(doc.get("generation", 0)))
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            raise CorruptCheckpointError(
                f"the last checkpoint record in {where} is unreadable ({exc}); inspect the topic, and "
                "restart with --from FILE:POS or --from GTID once you know where to resume"
            ) from exc

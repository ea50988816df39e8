"""The phase document of DESIGN §3.4 and its audit-history entries: pure values, no I/O."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

MIN_PHASE = 1
MAX_PHASE = 5

PHASE_NAMES = {
    1: "MySQL Only",
    2: "Safety",
    3: "Validation",
    4: "Transition",
    5: "DynamoDB Only",
}

FLAG_NAMES = (
    "migration_phase",
    "dual_write_enabled",
    "dual_read_enabled",
    "read_from_dynamodb",
    "validation_enabled",
)

# The guide's table (DESIGN §1): the public contract of the controller.
_FLAGS: dict[int, tuple[bool, bool, bool, bool]] = {
    #    dual_write, dual_read, read_from_dynamodb, validation
    1: (False, False, False, False),
    2: (True, False, False, False),
    3: (True, True, False, True),
    4: (True, False, True, False),
    5: (False, False, True, False),
}


def flags_for_phase(n: int) -> dict[str, bool | int]:
    """The five flags of phase ``n`` exactly as the user's guide fixes them."""
    if n not in _FLAGS:
        raise ValueError(f"phase must be {MIN_PHASE}-{MAX_PHASE}, got {n!r}")
    dual_write, dual_read, read_ddb, validation = _FLAGS[n]
    return {
        "migration_phase": n,
        "dual_write_enabled": dual_write,
        "dual_read_enabled": dual_read,
        "read_from_dynamodb": read_ddb,
        "validation_enabled": validation,
    }


@dataclass(frozen=True)
class Freeze:
    """A switch of the write target in progress (docs/design.md): writes to the current store
    pause until the phase moves to ``target`` (or the switch aborts)."""

    target: int
    generation: int  # the generation the switch opens
    since: float  # wall time the freeze was announced

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Freeze:
        return cls(target=int(doc["target"]), generation=int(doc["generation"]), since=float(doc["since"]))


@dataclass(frozen=True)
class PhaseState:
    """The stored phase document. ``epoch`` increases by one on every change (0 = never set).

    ``generation`` is the version generation of the store that takes writes (docs/design.md):
    even while MySQL does (phases 1-4), odd while DynamoDB does (phase 5). ``freeze`` is set
    while a switch of the write target is in progress.
    """

    phase: int = MIN_PHASE
    epoch: int = 0
    updated_at: float = 0.0
    updated_by: str = ""
    reason: str = ""
    generation: int = 0
    freeze: Freeze | None = None

    def __post_init__(self) -> None:
        if self.phase not in _FLAGS:
            raise ValueError(f"phase must be {MIN_PHASE}-{MAX_PHASE}, got {self.phase!r}")
        if self.epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {self.epoch!r}")

    @property
    def migration_phase(self) -> int:
        return self.phase

    @property
    def dual_write_enabled(self) -> bool:
        return _FLAGS[self.phase][0]

    @property
    def dual_read_enabled(self) -> bool:
        return _FLAGS[self.phase][1]

    @property
    def read_from_dynamodb(self) -> bool:
        return _FLAGS[self.phase][2]

    @property
    def validation_enabled(self) -> bool:
        return _FLAGS[self.phase][3]

    @property
    def name(self) -> str:
        return PHASE_NAMES[self.phase]

    def flags(self) -> dict[str, bool | int]:
        return flags_for_phase(self.phase)

    @property
    def frozen(self) -> bool:
        return self.freeze is not None

    def to_doc(self) -> dict[str, Any]:
        """The stored form: the flags are written too, so that readers in any language see them."""
        doc = {**asdict(self), **self.flags()}
        doc["freeze"] = None if self.freeze is None else self.freeze.to_doc()
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> PhaseState:
        freeze = doc.get("freeze")
        return cls(
            phase=int(doc["phase"]), epoch=int(doc["epoch"]), updated_at=float(doc["updated_at"]),
            updated_by=str(doc.get("updated_by", "")), reason=str(doc.get("reason", "")),
            generation=int(doc.get("generation", 0)),
            freeze=Freeze.from_doc(freeze) if isinstance(freeze, dict) else None,
        )


@dataclass(frozen=True)
class HistoryEntry:
    """One audited phase change (append-only)."""

    epoch: int
    at: float
    actor: str
    from_phase: int
    to_phase: int
    reason: str
    forced_gates: tuple[str, ...] = ()
    acknowledgements: tuple[str, ...] = field(default=())
    details: dict[str, Any] = field(default_factory=dict)  # e.g. a switch's step timings

    def to_doc(self) -> dict[str, Any]:
        d = asdict(self)
        d["forced_gates"] = list(self.forced_gates)
        d["acknowledgements"] = list(self.acknowledgements)
        return d

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> HistoryEntry:
        return cls(
            epoch=int(doc["epoch"]), at=float(doc["at"]), actor=str(doc["actor"]),
            from_phase=int(doc["from_phase"]), to_phase=int(doc["to_phase"]), reason=str(doc["reason"]),
            forced_gates=tuple(doc.get("forced_gates", ())),
            acknowledgements=tuple(doc.get("acknowledgements", ())),
            details=dict(doc.get("details") or {}),
        )


# --------------------------------------------------------------------------- counter buckets

BUCKET_S = 60


def bucket_of(ts: float) -> int:
    """The per-minute bucket holding instant ``ts`` (epoch seconds): bucket b covers [60b, 60b+60)."""
    return math.floor(ts / BUCKET_S)


def buckets_between(since: float, until: float) -> range:
    """The buckets a window [since, until] touches, both ends' minutes included.

    Counts are kept per minute, so a window is resolved to whole minutes: an event in the same
    minute as ``since`` or ``until`` counts. An empty range when ``until < since``.
    """
    if until < since:
        return range(0)
    return range(bucket_of(since), bucket_of(until) + 1)

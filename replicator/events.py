"""The change event (DESIGN §3.1): the contract between the reader, the writer and validators.

Pure data and (de)serialisation; no I/O.

Values are carried losslessly. In Python a column value is one of::

    None | int | float | str | Decimal | bytes | Temporal | frozenset[str] (SET) | JsonDoc

and on the wire (JSON, orjson) the types JSON lacks are tagged one-key objects::

    {"$decimal": "12.50"}  {"$bytes": "<base64>"}  {"$set": ["a", "b"]}  {"$json": <document>}
    {"$jsontext": "<document text>"}  {"$date": "2024-01-31"}  {"$datetime": "2024-01-31T10:00:00.123456"}
    {"$timestamp": "2024-01-31T10:00:00.123456Z"}  {"$time": "-838:59:59.000000"}

JSON numbers are exact (:func:`parse_json_exact`): an integer of any size is an ``int``, a
fraction or exponent a ``float`` when the double holds it exactly, else a ``Decimal``. A
document with a number that orjson cannot carry exactly (an integer beyond 64 bits, a
``Decimal``) travels as ``$jsontext``, its exact text; every other as ``$json``.

Temporal values keep MySQL's own text (zero dates included) with exactly the column's
fractional digits, so nothing is lost to Python's datetime range.

Versions (docs/design.md, "Versions across direction changes")::

    version = generation << 52 | base                      (63 bits)
    base    = (binlog file sequence << 32) + event start offset + 2 * row index + half

``half`` is 1 for the insert half of a primary-key update (which the pipeline carries as a
delete of the old key and an insert of the new one) and 0 otherwise: when both halves land on
one item key (a key template over columns the update kept), the insert wins whichever the
writer applies first. Every row image in a rows event takes at least two bytes of the event
(its NULL bitmap and a non-NULL primary-key value), after a header of at least 19, so
``offset + 2 * row + 1`` stays below the next event's offset: bases are unique and strictly
increase along the binlog of one server (and never fall below the ``offset + row`` of earlier
releases). File offsets are 32-bit in the v4 event header, and the file sequence is limited to 20
bits (binlog names have six digits), so a base fits in 52 bits. The generation (11 bits) is the
one of the last fence state in which MySQL took writes (:mod:`replicator.fence`); it is 0 before
any switch of the write target, where a version is exactly its base.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import orjson

from replicator.errors import BadEventError

ENVELOPE_VERSION = 1

Op = Literal["c", "u", "d", "r"]
OPS: frozenset[str] = frozenset(("c", "u", "d", "r"))
TemporalKind = Literal["date", "datetime", "timestamp", "time"]
TEMPORAL_KINDS: frozenset[str] = frozenset(("date", "datetime", "timestamp", "time"))


@dataclass(frozen=True, slots=True)
class Temporal:
    """A DATE/DATETIME/TIMESTAMP/TIME value as MySQL's canonical text (zero dates allowed)."""

    kind: TemporalKind
    text: str


@dataclass(frozen=True, slots=True)
class JsonDoc:
    """A JSON column's document (any JSON value), kept apart from plain strings."""

    value: Any


Value = None | int | float | str | Decimal | bytes | Temporal | frozenset[str] | JsonDoc
Row = dict[str, Value]


# --------------------------------------------------------------------------- exact JSON numbers

# A number that a double may not hold exactly: a fraction, an exponent or 19+ digits. Strings that
# look so only send the document down the exact (slower) parse, which is right for them too.
_MAYBE_INEXACT = re.compile(r"\d[.eE]|\d{19}")


def exact_number(token: str) -> int | float | Decimal:
    """A JSON number's text as its exact value: ``int`` for an integer, ``float`` when the
    double's shortest spelling is the same number (``1.10``, ``0.1``, ``2.5e-3``), else
    ``Decimal`` (``3.14159265358979323846``, ``1e400``)."""
    if token.lstrip("-").isdigit():
        return int(token)
    exact = Decimal(token)
    f = float(token)
    return f if math.isfinite(f) and Decimal(repr(f)) == exact else exact


def parse_json_exact(text: str | bytes) -> Any:
    """A JSON document with every number exact (:func:`exact_number`); orjson's reading where
    the text has no number a double could round."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if not _MAYBE_INEXACT.search(text):
        return orjson.loads(text)
    return json.loads(text, parse_float=exact_number, parse_int=int)


def _json_number_text(v: Any) -> str:
    if isinstance(v, Decimal):
        return format(v, "f") if abs(v.adjusted()) < 40 else str(v)
    return str(v)


def json_text(doc: Any, *, sort_keys: bool = False, spaced: bool = False) -> str:
    """The document as JSON text, its numbers exact (big integers, Decimals): compact as orjson
    writes it, or ``spaced`` as ``json.dumps(ensure_ascii=False)`` does."""
    try:
        if spaced:
            return json.dumps(doc, ensure_ascii=False, sort_keys=sort_keys)
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS if sort_keys else 0).decode()
    except TypeError:
        pass
    comma, colon = (", ", ": ") if spaced else (",", ":")
    if isinstance(doc, dict):
        items = sorted(doc.items()) if sort_keys else doc.items()
        return "{" + comma.join(json_text(str(k), spaced=spaced) + colon
                                + json_text(v, sort_keys=sort_keys, spaced=spaced) for k, v in items) + "}"
    if isinstance(doc, list | tuple):
        return "[" + comma.join(json_text(v, sort_keys=sort_keys, spaced=spaced) for v in doc) + "]"
    if isinstance(doc, int | Decimal) and not isinstance(doc, bool):
        return _json_number_text(doc)
    raise TypeError(f"not a JSON value: {type(doc).__name__}")


def _json_tagged(doc: Any) -> dict[str, Any]:
    """A document's wire form: ``$json`` when orjson carries it exactly, else ``$jsontext``."""
    try:
        return {"$json": orjson.Fragment(orjson.dumps(doc))}
    except TypeError:
        return {"$jsontext": json_text(doc)}


# --------------------------------------------------------------------------- versions

GENERATION_SHIFT = 52  # version = generation << GENERATION_SHIFT | base
GENERATION_BITS = 11  # 63 bits in all: a version is a non-negative signed 64-bit integer
MAX_GENERATION = (1 << GENERATION_BITS) - 1
_BASE_MASK = (1 << GENERATION_SHIFT) - 1
_FILE_SEQ_BITS = 20
_OFFSET_BITS = 32


def binlog_sequence(file: str) -> int:
    """The numeric suffix of a binlog file name: ``mysql-bin.000123`` -> 123."""
    _, _, suffix = file.rpartition(".")
    if not suffix.isdigit():
        raise ValueError(f"binlog file name without a numeric suffix: {file!r}")
    return int(suffix)


def with_generation(generation: int, base: int) -> int:
    """``generation << 52 | base``; ValueError when either is out of its range."""
    if not 0 <= generation <= MAX_GENERATION:
        raise ValueError(f"version generation {generation} out of range (0..{MAX_GENERATION})")
    if not 0 <= base <= _BASE_MASK:
        raise ValueError(f"version base {base} out of range (0..2**{GENERATION_SHIFT} - 1)")
    return generation << GENERATION_SHIFT | base


def split_version(version: int) -> tuple[int, int]:
    """``(generation, base)`` of a version: the inverse of :func:`with_generation`."""
    if version < 0:
        raise ValueError(f"negative version {version}")
    return version >> GENERATION_SHIFT, version & _BASE_MASK


def binlog_version(file: str, offset: int, row: int = 0, generation: int = 0, half: int = 0) -> int:
    """The version of row ``row`` of the rows event starting at ``offset`` of ``file``; ``half=1``
    for the insert half of a primary-key update (see the module docstring)."""
    seq = binlog_sequence(file)
    if not (0 <= seq < 1 << _FILE_SEQ_BITS and 0 <= offset < 1 << _OFFSET_BITS and row >= 0
            and half in (0, 1)):
        raise ValueError(f"binlog position out of range: {file}:{offset} row {row} half {half}")
    return with_generation(generation, (seq << _OFFSET_BITS) + offset + 2 * row + half)


def snapshot_version(file: str, head_offset: int, generation: int = 0) -> int:
    """The version for snapshot rows selected after reading the binlog head ``file:head_offset``.

    Its base is one below the first base a later event can have, and not below any earlier
    event's, so stream changes the chunk did not see always win, and the ones it saw tie
    harmlessly. ``generation``: the fence's MySQL generation read in the chunk's snapshot.
    """
    _, base = split_version(binlog_version(file, head_offset))
    return with_generation(generation, base - 1)


# --------------------------------------------------------------------------- event


@dataclass(frozen=True, slots=True)
class Position:
    file: str
    offset: int  # start offset of the rows event in the file
    row: int = 0  # index of the row within the event
    gtid: str | None = None

    @property
    def version(self) -> int:
        """The base version of this position (generation 0); an event's ``version`` adds its generation."""
        return binlog_version(self.file, self.offset, self.row)


@dataclass(frozen=True, slots=True)
class TxInfo:
    id: str  # GTID when the server has one, else "file:offset" of the transaction start
    index: int  # row index within the transaction


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    op: Op
    db: str
    table: str
    pk: Row
    before: Row | None
    after: Row | None
    pos: Position
    version: int
    ts_ms: int
    tx: TxInfo
    schema: str  # fingerprint of the table schema the row was decoded with
    columns: tuple[tuple[str, str], ...] = field(default=())  # (name, MySQL COLUMN_TYPE) in order

    @property
    def source(self) -> str:
        return f"{self.db}.{self.table}"

    @property
    def row(self) -> Row:
        """The row image that defines the target state (``before`` for deletes)."""
        image = self.after if self.op != "d" else self.before
        if image is None:
            raise BadEventError(f"{self.source}: op {self.op!r} without its row image", table=self.source)
        return image

    def key_bytes(self) -> bytes:
        return encode_key(self.pk)

    def to_json(self) -> bytes:
        """The envelope. Rows go to orjson as they are, which writes the plain values itself and
        asks :func:`_tagged` for the others: the bytes of :func:`encode_row`'s form (tested
        equal on every type), ~4x faster, the reader's largest per-row cost before."""
        doc: dict[str, Any] = {
            "v": ENVELOPE_VERSION,
            "op": self.op,
            "db": self.db,
            "table": self.table,
            "pk": self.pk,
            "pos": {"file": self.pos.file, "offset": self.pos.offset, "row": self.pos.row,
                    "gtid": self.pos.gtid},
            "version": self.version,
            "ts_ms": self.ts_ms,
            "tx": {"id": self.tx.id, "index": self.tx.index},
            "schema": self.schema,
            "columns": self.columns,  # pairs: JSON arrays, as lists would be
        }
        if self.before is not None:
            doc["before"] = self.before
        if self.after is not None:
            doc["after"] = self.after
        return orjson.dumps(doc, default=_tagged, option=_TAGGED_OPTIONS)

    @classmethod
    def from_json(cls, data: bytes) -> ChangeEvent:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise BadEventError(f"not JSON: {exc}", reason="not-json") from exc
        if not isinstance(doc, dict):
            raise BadEventError("envelope is not a JSON object", reason="bad-envelope")
        if doc.get("v") != ENVELOPE_VERSION:
            raise BadEventError(f"unknown envelope version {doc.get('v')!r} (this build reads "
                                f"{ENVELOPE_VERSION})", reason="unknown-version")
        try:
            op = doc["op"]
            if op not in OPS:
                raise BadEventError(f"unknown op {op!r}", reason="bad-op")
            pos = doc["pos"]
            before = decode_row(doc["before"]) if "before" in doc else None
            after = decode_row(doc["after"]) if "after" in doc else None
            if (op == "d") != (after is None) or (op in ("u", "d")) != (before is not None):
                raise BadEventError(f"op {op!r} with the wrong row images", reason="bad-images")
            return cls(
                op=op, db=str(doc["db"]), table=str(doc["table"]), pk=decode_row(doc["pk"]),
                before=before, after=after,
                pos=Position(str(pos["file"]), int(pos["offset"]), int(pos["row"]), pos.get("gtid")),
                version=int(doc["version"]), ts_ms=int(doc["ts_ms"]),
                tx=TxInfo(str(doc["tx"]["id"]), int(doc["tx"]["index"])),
                schema=str(doc["schema"]),
                columns=tuple((str(n), str(t)) for n, t in doc.get("columns", ())),
            )
        except BadEventError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise BadEventError(f"malformed event: {type(exc).__name__}: {exc}", reason="malformed") from exc


# --------------------------------------------------------------------------- values


def encode_value(v: Value) -> Any:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, Decimal):
        return {"$decimal": str(v)}
    if isinstance(v, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, Temporal):
        return {"$" + v.kind: v.text}
    if isinstance(v, frozenset | set):
        return {"$set": sorted(v)}
    if isinstance(v, JsonDoc):
        try:
            orjson.dumps(v.value)
        except TypeError:
            return {"$jsontext": json_text(v.value)}
        return {"$json": v.value}
    raise TypeError(f"cannot encode a {type(v).__name__} as a column value")


# Dataclasses (Temporal, JsonDoc) and datetimes go to ``default`` rather than orjson's own forms.
_TAGGED_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def _tagged(v: Any) -> Any:
    """orjson's ``default`` in :meth:`ChangeEvent.to_json`: a column value orjson does not write
    itself, in :func:`encode_value`'s tagged form (which stays the reference)."""
    if isinstance(v, Decimal):
        return {"$decimal": str(v)}
    if isinstance(v, Temporal):
        return {"$" + v.kind: v.text}
    if isinstance(v, JsonDoc):
        # Written on its own, as encode_value's form is: nothing inside a document gets tagged.
        return _json_tagged(v.value)
    return encode_value(v)  # bytes, sets; TypeError for what is not a column value


def decode_value(j: Any) -> Value:
    if j is None or isinstance(j, int | float | str):
        return j
    if isinstance(j, dict) and len(j) == 1:
        ((tag, payload),) = j.items()
        if tag == "$decimal":
            return Decimal(payload)
        if tag == "$bytes":
            return base64.b64decode(payload, validate=True)
        if tag == "$set":
            return frozenset(payload)
        if tag == "$json":
            return JsonDoc(payload)
        if tag == "$jsontext" and isinstance(payload, str):
            return JsonDoc(parse_json_exact(payload))
        if tag.startswith("$") and tag[1:] in TEMPORAL_KINDS:
            return Temporal(tag[1:], payload)
    raise ValueError(f"not a column value: {j!r}")


def encode_row(row: Row) -> dict[str, Any]:
    return {k: encode_value(v) for k, v in row.items()}


def decode_row(j: Any) -> Row:
    if not isinstance(j, dict):
        raise TypeError(f"row image is a {type(j).__name__}, not an object")
    return {str(k): decode_value(v) for k, v in j.items()}


def encode_key(pk: Row) -> bytes:
    """Deterministic Kafka key for a primary key: sorted columns, tagged values."""
    return orjson.dumps(encode_row(pk), option=orjson.OPT_SORT_KEYS)


def schema_fingerprint(columns: tuple[tuple[str, str], ...] | list[tuple[str, str]]) -> str:
    """A short stable digest of (name, type) pairs in column order."""
    h = hashlib.sha256()
    for name, typ in columns:
        h.update(name.encode())
        h.update(b"\0")
        h.update(typ.encode())
        h.update(b"\1")
    return h.hexdigest()[:16]

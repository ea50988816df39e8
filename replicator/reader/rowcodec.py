"""Rows events -> Kafka records: the compiled fast path and the pure-Python path, side by side.

Both turn one :class:`~replicator.reader.items.RowsChange` into the Kafka records of its change
events, ``(topic, key, value)`` in binlog order, numbered within the transaction from
``first_index``, with the versions of :func:`replicator.events.binlog_version`, and the count
of events per op:

* :class:`PythonEncoder` -- the reference: :func:`~replicator.reader.decode.decode_rows` to
  Python values, :func:`~replicator.reader.changes.build_events`, then each event's
  ``key_bytes()`` and ``to_json()``.
* :class:`CompiledEncoder` -- the C extension ``replicator.reader._rowcodec`` (``_rowcodec.c``),
  built by ``make setup``: it reads the event's row bytes with the column layout prepared here
  once per table-map layout and writes the same key and envelope bytes without a Python value per
  column. Values that need Python's own formatting (FLOAT, DOUBLE, JSON, MariaDB's UUID / INET
  types, the pre-5.6 temporal types, non-ASCII text in charsets other than UTF-8) go through the
  reference decoder and the envelope's value encoder, one call per value; so does any column
  whose reference decoder is not the one the C code mirrors, or disagrees with it on a sample
  value (:func:`column_layout`). A change without raw row bytes (an in-memory source) goes
  through the Python path.

:func:`row_encoder` picks one from ``reader.decoder``: ``auto`` (compiled when the extension is
importable, else Python with one warning), ``compiled`` (a missing extension is a configuration
error), ``python``. ``tests/replicator/reader/test_rowcodec.py`` runs one suite against both.
"""

from __future__ import annotations

import importlib
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType
from typing import Any, Literal, Protocol

import orjson
import structlog

from replicator.errors import ConfigError, UnmappableSchemaError
from replicator.events import _TAGGED_OPTIONS, ENVELOPE_VERSION, _tagged, binlog_version
from replicator.reader.changes import TxContext, build_events, require_primary_key
from replicator.reader.decode import check_bitmaps, column_decoder, decimal_size, python_codec
from replicator.reader.items import RowsChange
from replicator.reader.schema import ColumnSpec, T, TableSchema

__all__ = ["CompiledEncoder", "DecoderChoice", "Encoded", "PythonEncoder", "RowEncoder", "compiled_module",
           "row_encoder"]

log = structlog.get_logger("replicator.reader")

DecoderChoice = Literal["auto", "compiled", "python"]
Record = tuple[str, bytes, bytes]  # topic, key, envelope


@dataclass(frozen=True, slots=True)
class Encoded:
    records: list[Record]
    rows: int  # row images (pairs for updates) of the rows event
    ops: dict[str, int]  # events per op ("c", "u", "d")


class RowEncoder(Protocol):
    name: str

    def encode(self, change: RowsChange, tx: TxContext, first_index: int, *, topic: str, ts_ms: int,
               generation: int) -> Encoded: ...


def _value_json(v: Any) -> bytes:
    """One column value as :meth:`~replicator.events.ChangeEvent.to_json` writes it in a row image."""
    return orjson.dumps(v, default=_tagged, option=_TAGGED_OPTIONS)


class PythonEncoder:
    """The reference path (pure Python over :mod:`.decode` and :mod:`.changes`)."""

    name = "python"

    def encode(self, change: RowsChange, tx: TxContext, first_index: int, *, topic: str, ts_ms: int,
               generation: int) -> Encoded:
        events = build_events(change, tx, first_index, ts_ms=ts_ms, generation=generation)
        ops: Counter[str] = Counter(ev.op for ev in events)
        return Encoded([(topic, ev.key_bytes(), ev.to_json()) for ev in events], len(change.rows),
                       {op: ops[op] for op in ("c", "u", "d")})


# --------------------------------------------------------------------------- the compiled path

# Column codes of _rowcodec.c.
_INT, _DECIMAL, _YEAR, _BIT, _DATE, _DATETIME2, _TIMESTAMP2, _TIME2 = 1, 2, 3, 4, 5, 6, 7, 8
_TEXT, _BYTES, _ENUM, _SET, _PY, _DOUBLE = 9, 10, 11, 12, 13, 14
_TEXT_UTF8, _TEXT_ASCII_COMPAT, _TEXT_OTHER = 0, 1, 2
_INT_WIDTHS = {T.TINY: 1, T.SHORT: 2, T.INT24: 3, T.LONG: 4, T.LONGLONG: 8}
_ASCII = bytes(range(128))

Layout = tuple[int, int, int, bytes, Any]
EncodeFn = Callable[..., tuple[list[Record], int, int, int, int]]  # _rowcodec.encode
_FSP_BYTES = (0, 1, 1, 2, 2, 3, 3)
_CHECK_FRAGS = (b"", b"", b"", b"", b"", b"", b"", b"")


@lru_cache(maxsize=64)
def _text_mode(codec: str, errors: str) -> int:
    if codec == "utf-8" and errors == "strict":
        return _TEXT_UTF8
    try:
        same = _ASCII.decode(codec, errors) == _ASCII.decode("ascii")
    except (UnicodeError, LookupError):
        same = False
    return _TEXT_ASCII_COMPAT if same else _TEXT_OTHER


def _text_layout(c: ColumnSpec, name: bytes, size: int) -> Layout:
    charset = c.charset or "utf8mb4"
    codec = python_codec(charset)
    errors = "mysql-latin1" if charset == "latin1" else "strict"
    return (_TEXT, size, _text_mode(codec, errors), name, (codec, errors))


# The reference decoder (decode.column_decoder) each native code stands for, by qualified name: a
# column whose Python decoder is another one (a value conversion added there later, e.g. a type
# read as text) goes through that decoder instead, so the two paths cannot drift apart.
_NATIVE_FOR = {
    _INT: ("_struct_decoder.<locals>.dec", "_int24.<locals>.dec"), _DOUBLE: ("_struct_decoder.<locals>.dec",),
    _DECIMAL: ("_decimal.<locals>.dec",), _YEAR: ("_year",), _BIT: ("_bit.<locals>.dec",), _DATE: ("date",),
    _DATETIME2: ("datetime2.<locals>.dec",), _TIMESTAMP2: ("timestamp2.<locals>.dec",),
    _TIME2: ("time2.<locals>.dec",), _TEXT: ("_text.<locals>.dec",), _BYTES: ("_bytes.<locals>.dec",),
    _ENUM: ("_enum.<locals>.dec",), _SET: ("_set.<locals>.dec",),
}


def column_layout(c: ColumnSpec, encode: EncodeFn | None = None) -> Layout:
    """What ``_rowcodec.c`` needs of a column: ``(code, a, b, name JSON + ':', extra)``.

    With ``encode`` (the extension's), a native column is also checked on a sample value against
    the reference decoder; any difference sends the column through the reference decoder.
    """
    decoder = column_decoder(c)  # also raises for a type nothing can decode
    native = _native_layout(c, decoder)
    if native[0] == _PY:
        return native
    if getattr(decoder, "__qualname__", "") not in _NATIVE_FOR[native[0]] or (
            encode is not None and not _agrees(native, decoder, encode)):
        return (_PY, 0, 0, native[3], decoder)
    return native


def _sample(layout: Layout) -> bytes:
    """A value's bytes for the check of :func:`_agrees`: a zero date, an empty string, ..."""
    code, a, _b, _name, extra = layout
    if code in (_INT, _BIT):
        return bytes(a)
    if code == _DOUBLE:
        return bytes(8)
    if code == _DECIMAL:
        return b"\x80" + bytes(decimal_size(a, layout[2]) - 1)
    if code == _YEAR:
        return b"\x7c"
    if code == _DATE:
        return bytes(3)
    if code in (_DATETIME2, _TIME2):
        return b"\x80" + bytes((4 if code == _DATETIME2 else 2) + _FSP_BYTES[a])
    if code == _TIMESTAMP2:
        return b"\x00\x00\x00\x01" + bytes(_FSP_BYTES[a])
    if code in (_TEXT, _BYTES):
        return bytes(a)  # length 0
    if code == _ENUM:
        return (1 if len(extra) > 1 else 0).to_bytes(a, "little")
    return b"\xff" * a  # SET: every member


def _agrees(layout: Layout, decoder: Callable[[bytes, int], Any], encode: EncodeFn) -> bool:
    """The compiled code writes a sample value of the column as the reference decoder reads it
    (the Kafka key of a one-column table keyed by it)."""
    body = b"\0" + _sample(layout)
    try:
        value, _ = decoder(body, 1)
        expected = b"{" + layout[3] + _value_json(value) + b"}"
        records = encode((layout,), body, 1, 0, _CHECK_FRAGS, (0,), (0,), 0, 0, _value_json, "")[0]
    except (ValueError, UnicodeError, IndexError, TypeError, struct.error):
        return False
    return len(records) == 1 and records[0][1] == expected


def _native_layout(c: ColumnSpec, decoder: Callable[[bytes, int], Any]) -> Layout:
    name = orjson.dumps(c.name) + b":"
    t = c.type
    py: Layout = (_PY, 0, 0, name, decoder)
    if t in _INT_WIDTHS:
        return (_INT, _INT_WIDTHS[t], int(c.unsigned), name, None)
    if t == T.DOUBLE:
        return (_DOUBLE, 0, 0, name, None)
    if t == T.NEWDECIMAL and 0 < c.precision <= 65 and 0 <= c.decimals <= c.precision:
        return (_DECIMAL, c.precision, c.decimals, name, None)
    if t == T.YEAR:
        return (_YEAR, 0, 0, name, None)
    if t == T.BIT and 0 < (c.bits + 7) // 8 <= 8:
        return (_BIT, (c.bits + 7) // 8, 0, name, None)
    if t == T.DATE:
        return (_DATE, 0, 0, name, None)
    if t in (T.DATETIME2, T.TIMESTAMP2, T.TIME2) and 0 <= c.fsp <= 6:
        code = {T.DATETIME2: _DATETIME2, T.TIMESTAMP2: _TIMESTAMP2, T.TIME2: _TIME2}[t]
        return (code, c.fsp, 0, name, py[4])  # the Python decoder for values out of the packed range
    if t in (T.STRING, T.VARCHAR, T.VAR_STRING):
        size = 2 if c.max_length > 255 else 1
        if c.is_binary:
            return (_BYTES, size, c.max_length if t == T.STRING else 0, name, None)
        return _text_layout(c, name, size)
    if t == T.BLOB and not c.is_json and 1 <= c.length_size <= 4:
        return (_BYTES, c.length_size, 0, name, None) if c.is_binary else _text_layout(c, name, c.length_size)
    if t == T.GEOMETRY and 1 <= c.length_size <= 4:
        return (_BYTES, c.length_size, 0, name, None)
    if t == T.ENUM and 1 <= c.size <= 8:
        return (_ENUM, c.size, 0, name, tuple(orjson.dumps(v) for v in ("", *c.values)))
    if t == T.SET and 1 <= c.size <= 8:
        members = sorted(enumerate(c.values), key=lambda m: m[1])
        return (_SET, c.size, 0, name, tuple((bit, orjson.dumps(v)) for bit, v in members))
    return py


@dataclass(frozen=True, slots=True)
class _TableLayout:
    columns: tuple[Layout, ...]
    pk: tuple[int, ...]  # column indexes in key order
    key_order: tuple[int, ...]  # the same, sorted by name (the Kafka key's sorted keys)
    db_table_pk: bytes
    schema_columns: bytes
    # A FLOAT/DOUBLE key column: the C code compares key values by their JSON text, where -0.0 and
    # 0.0 differ but Python's == (the reference's "did the key change") does not; such tables go
    # through the Python path.
    python_only: bool


@lru_cache(maxsize=1024)
def _table_layout(schema: TableSchema, encode: EncodeFn | None = None) -> _TableLayout:
    index = {c.name: i for i, c in enumerate(schema.columns)}
    pk = tuple(index[n] for n in schema.primary_key)
    return _TableLayout(
        columns=tuple(column_layout(c, encode) for c in schema.columns),
        pk=pk,
        key_order=tuple(sorted(pk, key=lambda i: schema.columns[i].name)),
        db_table_pk=(b',"db":' + orjson.dumps(schema.db) + b',"table":' + orjson.dumps(schema.table)
                     + b',"pk":{'),
        schema_columns=b'},"schema":' + orjson.dumps(schema.fingerprint) + b',"columns":'
        + orjson.dumps(schema.typed_columns),
        python_only=any(schema.columns[i].type in (T.FLOAT, T.DOUBLE) for i in pk),
    )


_OP_PREFIXES = tuple(b'{"v":' + str(ENVELOPE_VERSION).encode() + b',"op":"' + op + b'"'
                     for op in (b"c", b"u", b"d"))
_KINDS = {"insert": 0, "update": 1, "delete": 2}


class CompiledEncoder:
    """The C fast path; changes without raw row bytes go through ``fallback``."""

    name = "compiled"

    def __init__(self, module: ModuleType) -> None:
        self._encode: EncodeFn = module.encode
        self._fallback = PythonEncoder()

    def encode(self, change: RowsChange, tx: TxContext, first_index: int, *, topic: str, ts_ms: int,
               generation: int) -> Encoded:
        raw = change.raw
        if raw is None:
            return self._fallback.encode(change, tx, first_index, topic=topic, ts_ms=ts_ms,
                                         generation=generation)
        schema = change.schema
        require_primary_key(change)
        check_bitmaps(schema, raw.bitmaps)
        layout = _table_layout(schema, self._encode)
        if layout.python_only:
            return self._fallback.encode(change, tx, first_index, topic=topic, ts_ms=ts_ms,
                                         generation=generation)
        version0 = binlog_version(change.file, change.offset, 0, generation, 0)
        frags = (*_OP_PREFIXES, layout.db_table_pk,
                 b'},"pos":{"file":' + orjson.dumps(change.file) + b',"offset":' + str(change.offset).encode()
                 + b',"row":',
                 b',"gtid":' + orjson.dumps(tx.gtid) + b'},"version":',
                 b',"ts_ms":' + str(ts_ms).encode() + b',"tx":{"id":' + orjson.dumps(tx.id) + b',"index":',
                 layout.schema_columns)
        records, rows, c, u, d = self._encode(layout.columns, raw.body, len(raw.bitmaps), _KINDS[change.kind],
                                              frags, layout.pk, layout.key_order, first_index, version0,
                                              _value_json, topic)
        return Encoded(records, rows, {"c": c, "u": u, "d": d})


def compiled_module() -> ModuleType | None:
    """The C extension, or None when it was not built (or does not load) on this machine."""
    try:
        return importlib.import_module("replicator.reader._rowcodec")
    except ImportError as exc:
        log.debug("rowcodec_import_failed", error=str(exc))
        return None


_warned = False


def row_encoder(choice: DecoderChoice) -> RowEncoder:
    """The encoder ``reader.decoder`` asks for (see the module docstring)."""
    global _warned
    if choice == "python":
        return PythonEncoder()
    module = compiled_module()
    if module is not None:
        return CompiledEncoder(module)
    if choice == "compiled":
        raise ConfigError("reader.decoder is 'compiled' but the extension replicator.reader._rowcodec is not "
                          "built on this machine: run `make setup` (it needs gcc and the Python headers), or "
                          "set reader.decoder to 'auto' or 'python'")
    if not _warned:
        _warned = True
        log.warning("rowcodec_unavailable", decoder="python",
                    hint="the compiled row decoder is not built (make setup needs gcc and the Python "
                         "headers); the reader uses the pure-Python decoder, several times slower")
    return PythonEncoder()


def translate_errors(exc: Exception, change: RowsChange) -> UnmappableSchemaError:
    """A rows event whose bytes do not decode (both paths raise the same kinds of errors)."""
    return UnmappableSchemaError(
        f"a row of {change.schema.source} at {change.file}:{change.offset} could not be decoded: "
        f"{type(exc).__name__}: {exc}; report it with the table definition"
    )

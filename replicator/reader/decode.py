"""Row images of a rows event, from raw bytes to the value model of :mod:`replicator.events`.

Pure functions over ``bytes``; no client. python-mysql-replication's own value decoding
gets several types wrong for a lossless pipeline (zero dates and empty SETs become NULL,
BINARY loses its 0x00 padding, TIME and BIT come back as approximations, FLOAT as the
widened double), so the adapter hands the row bytes to :func:`decode_rows` instead.

Formats follow the server's ``Field_*::pack``/``unpack`` (little-endian integers, big-endian
packed temporals in :mod:`.temporal`, the "new decimal" binary format). Every decoder is ``(buf, pos) ->
(value, next_pos)``; a table's decoders are built once per column layout and cached.
"""

from __future__ import annotations

import codecs
import socket
import struct
import uuid
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any, overload

from replicator.errors import UnmappableSchemaError
from replicator.events import JsonDoc, Row, Value, parse_json_exact
from replicator.reader import temporal
from replicator.reader.schema import ColumnSpec, T, TableSchema

Decoder = Callable[[bytes, int], tuple[Value, int]]

_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)

# MySQL charset name -> Python codec. latin1 in MySQL is cp1252 with the five undefined bytes
# mapped to the C1 controls; the "mysql-latin1" error handler below restores those.
_CODECS = {
    "utf8mb4": "utf-8", "utf8mb3": "utf-8", "utf8": "utf-8", "latin1": "cp1252", "ascii": "ascii",
    "ucs2": "utf-16-be", "utf16": "utf-16-be", "utf16le": "utf-16-le", "utf32": "utf-32-be",
    "latin2": "iso8859-2", "latin5": "iso8859-9", "latin7": "iso8859-13", "greek": "iso8859-7",
    "hebrew": "iso8859-8", "cp1250": "cp1250", "cp1251": "cp1251", "cp1256": "cp1256",
    "cp1257": "cp1257", "cp850": "cp850", "cp852": "cp852", "cp866": "cp866", "koi8r": "koi8-r",
    "koi8u": "koi8-u", "sjis": "shift_jis", "cp932": "cp932", "ujis": "euc-jp", "eucjpms": "euc-jp",
    "euckr": "euc-kr", "gbk": "gbk", "gb2312": "gb2312", "gb18030": "gb18030", "big5": "big5",
    "tis620": "tis-620", "macroman": "mac-roman", "swe7": "ascii",
}


def _latin1_fallback(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    return "".join(chr(b) for b in exc.object[exc.start:exc.end]), exc.end


codecs.register_error("mysql-latin1", _latin1_fallback)


def python_codec(charset: str) -> str:
    return _CODECS.get(charset, charset)


# --------------------------------------------------------------------------- fixed-size


def _struct_decoder(fmt: str) -> Decoder:
    s = struct.Struct(fmt)
    unpack, size = s.unpack_from, s.size

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        return unpack(buf, pos)[0], pos + size

    return dec


def _int24(unsigned: bool) -> Decoder:
    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        v = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
        if not unsigned and v & 0x800000:
            v -= 0x1000000
        return v, pos + 3

    return dec


def shortest_float32(f: float) -> float:
    """The shortest decimal that reads back as the same float32, as a Python float."""
    if f != f or f in (float("inf"), float("-inf")):
        return f
    pack = struct.Struct("<f")
    target = pack.pack(f)
    for digits in range(1, 10):
        candidate = float(f"{f:.{digits}g}")
        try:
            if pack.pack(candidate) == target:
                return candidate
        except OverflowError:  # rounding up past FLT_MAX: more digits needed
            continue
    return f


def _float(buf: bytes, pos: int) -> tuple[Value, int]:
    return shortest_float32(struct.unpack_from("<f", buf, pos)[0]), pos + 4


def _year(buf: bytes, pos: int) -> tuple[Value, int]:
    v = buf[pos]
    return (v + 1900 if v else 0), pos + 1


def _bit(nbytes: int) -> Decoder:
    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        return int.from_bytes(buf[pos:pos + nbytes], "big"), pos + nbytes

    return dec


def decimal_size(precision: int, scale: int) -> int:
    intg = precision - scale
    return (intg // 9) * 4 + _DIG2BYTES[intg % 9] + (scale // 9) * 4 + _DIG2BYTES[scale % 9]


def decode_decimal(raw: bytes, precision: int, scale: int) -> Decimal:
    """MySQL's binary "new decimal" to an exact Decimal with exactly ``scale`` fraction digits."""
    b = bytearray(raw)
    negative = not b[0] & 0x80
    b[0] ^= 0x80
    if negative:
        b = bytearray(x ^ 0xFF for x in b)
    intg = precision - scale
    lead = _DIG2BYTES[intg % 9]
    pos = lead
    int_digits = str(int.from_bytes(b[:lead], "big")) if lead else ""
    for _ in range(intg // 9):
        int_digits += f"{int.from_bytes(b[pos:pos + 4], 'big'):09d}"
        pos += 4
    frac_digits = ""
    for _ in range(scale // 9):
        frac_digits += f"{int.from_bytes(b[pos:pos + 4], 'big'):09d}"
        pos += 4
    tail = _DIG2BYTES[scale % 9]
    if tail:
        frac_digits += f"{int.from_bytes(b[pos:pos + tail], 'big'):0{scale % 9}d}"
    text = (int_digits.lstrip("0") or "0") + ("." + frac_digits if scale else "")
    return Decimal(("-" if negative else "") + text)


def _decimal(precision: int, scale: int) -> Decoder:
    size = decimal_size(precision, scale)

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        return decode_decimal(buf[pos:pos + size], precision, scale), pos + size

    return dec


# --------------------------------------------------------------------------- variable-size


def _length_prefixed(size: int) -> Callable[[bytes, int], tuple[bytes, int]]:
    def read(buf: bytes, pos: int) -> tuple[bytes, int]:
        length = int.from_bytes(buf[pos:pos + size], "little")
        start = pos + size
        return buf[start:start + length], start + length

    return read


def _text(size: int, charset: str) -> Decoder:
    read = _length_prefixed(size)
    codec = python_codec(charset)
    errors = "mysql-latin1" if charset == "latin1" else "strict"

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        raw, nxt = read(buf, pos)
        return raw.decode(codec, errors), nxt

    return dec


def _bytes(size: int, pad_to: int = 0) -> Decoder:
    read = _length_prefixed(size)

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        raw, nxt = read(buf, pos)
        return (raw.ljust(pad_to, b"\0") if pad_to else raw), nxt

    return dec


def _binary_text(kind: str, size: int, length: int) -> Decoder:
    """MariaDB's UUID / INET6 / INET4, logged as their BINARY(n) storage, as the text MariaDB
    returns for them: ``6ccd780c-baba-1026-9564-5b8c656024db``, ``2001:db8::ff00:42:8329``
    (inet_ntop's spelling, ``::ffff:1.2.3.4`` for a mapped IPv4), ``192.168.1.1``."""
    read = _length_prefixed(size)

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        raw, nxt = read(buf, pos)
        raw = raw.ljust(length, b"\0")
        if kind == "uuid":
            return str(uuid.UUID(bytes=raw)), nxt
        return socket.inet_ntop(socket.AF_INET6 if kind == "inet6" else socket.AF_INET, raw), nxt

    return dec


def parse_json_text(text: str) -> Any:
    """A MariaDB JSON column's text as a document, its numbers exact (DESIGN §3.1): integers
    beyond 64 bits stay integers, digits a double would drop stay a Decimal, as the backfill
    reads them (:func:`replicator.events.parse_json_exact`; the envelope carries such a
    document as ``$jsontext``)."""
    return parse_json_exact(text)


def _json_text(size: int, charset: str) -> Decoder:
    inner = _text(size, charset)

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        text, nxt = inner(buf, pos)
        return JsonDoc(parse_json_text(str(text))), nxt

    return dec


def _plain_json(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, dict):
        return {_plain_json(k): _plain_json(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain_json(x) for x in v]
    return v


def _mysql_json(size: int) -> Decoder:
    # MySQL's binary JSON format is parsed by the binlog library, through its adapter; imported
    # here (once per column layout) because that adapter imports this module.
    from replicator.adapters.binlog import parse_json_binary

    read = _length_prefixed(size)

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        raw, nxt = read(buf, pos)
        return JsonDoc(_plain_json(parse_json_binary(raw[0], raw[1:])) if raw else None), nxt

    return dec


def _enum(size: int, values: tuple[str, ...]) -> Decoder:
    members = ("", *values)

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        idx = int.from_bytes(buf[pos:pos + size], "little")
        return (members[idx] if idx < len(members) else ""), pos + size

    return dec


def _set(size: int, values: tuple[str, ...]) -> Decoder:
    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        mask = int.from_bytes(buf[pos:pos + size], "little")
        return frozenset(v for i, v in enumerate(values) if mask >> i & 1), pos + size

    return dec


# --------------------------------------------------------------------------- per column


def column_decoder(c: ColumnSpec) -> Decoder:
    t, u = c.type, c.unsigned
    if t == T.TINY:
        return _struct_decoder("<B" if u else "<b")
    if t == T.SHORT:
        return _struct_decoder("<H" if u else "<h")
    if t == T.INT24:
        return _int24(u)
    if t == T.LONG:
        return _struct_decoder("<I" if u else "<i")
    if t == T.LONGLONG:
        return _struct_decoder("<Q" if u else "<q")
    if t == T.FLOAT:
        return _float
    if t == T.DOUBLE:
        return _struct_decoder("<d")
    if t == T.NEWDECIMAL:
        return _decimal(c.precision, c.decimals)
    if t == T.YEAR:
        return _year
    if t == T.BIT:
        return _bit((c.bits + 7) // 8)
    if t == T.DATE:
        return temporal.date
    if t == T.DATETIME2:
        return temporal.datetime2(c.fsp)
    if t == T.TIMESTAMP2:
        return temporal.timestamp2(c.fsp)
    if t == T.TIME2:
        return temporal.time2(c.fsp)
    if t == T.DATETIME:
        return temporal.old_datetime
    if t == T.TIMESTAMP:
        return temporal.old_timestamp
    if t == T.TIME:
        return temporal.old_time
    if t in (T.STRING, T.VARCHAR, T.VAR_STRING):
        size = 2 if c.max_length > 255 else 1
        if c.text_type in ("uuid", "inet6", "inet4"):
            return _binary_text(c.text_type, size, c.max_length)
        if c.is_binary:
            return _bytes(size, c.max_length if t == T.STRING else 0)
        return _text(size, c.charset or "utf8mb4")
    if t == T.BLOB:
        if c.is_binary:
            return _bytes(c.length_size)
        if c.is_json:
            return _json_text(c.length_size, c.charset or "utf8mb4")
        return _text(c.length_size, c.charset or "utf8mb4")
    if t == T.GEOMETRY:
        return _bytes(c.length_size)
    if t == T.JSON:
        return _mysql_json(c.length_size)
    if t == T.ENUM:
        return _enum(c.size, c.values)
    if t == T.SET:
        return _set(c.size, c.values)
    raise UnmappableSchemaError(
        f"column {c.name!r} has MySQL type code {t}, which this reader cannot decode; "
        "exclude the table from the mapping or change the column type"
    )


@lru_cache(maxsize=1024)
def table_decoders(columns: tuple[ColumnSpec, ...]) -> tuple[tuple[str, Decoder], ...]:
    return tuple((c.name, column_decoder(c)) for c in columns)


def _bit_count(bitmap: bytes) -> int:
    return sum(bin(b).count("1") for b in bitmap)


def decode_image(decoders: tuple[tuple[str, Decoder], ...], buf: bytes, pos: int,
                 present: int) -> tuple[Row, int]:
    """One row image: the null bitmap of the present columns, then their values."""
    nulls_len = (present + 7) >> 3
    nulls = int.from_bytes(buf[pos:pos + nulls_len], "little")
    pos += nulls_len
    row: Row = {}
    for i, (name, dec) in enumerate(decoders):
        if nulls >> i & 1:
            row[name] = None
        else:
            row[name], pos = dec(buf, pos)
    return row, pos


def check_bitmaps(schema: TableSchema, bitmaps: tuple[bytes, ...]) -> None:
    """Every row image of the event carries every column (binlog_row_image=FULL)."""
    n = len(schema.columns)
    for bm in bitmaps:
        if _bit_count(bm) != n:
            raise UnmappableSchemaError(
                f"{schema.source}: a row image without every column; set binlog_row_image=FULL on the server"
            )


def decode_rows(schema: TableSchema, body: bytes, bitmaps: tuple[bytes, ...]) -> list[tuple[Row, ...]]:
    """All rows of a rows event body: one image per row (insert/delete), two for updates."""
    check_bitmaps(schema, bitmaps)
    n = len(schema.columns)
    decoders = table_decoders(schema.columns)
    rows: list[tuple[Row, ...]] = []
    pos, end = 0, len(body)
    images = len(bitmaps)
    while pos < end:
        first, pos = decode_image(decoders, body, pos, n)
        if images == 2:
            second, pos = decode_image(decoders, body, pos, n)
            rows.append((first, second))
        else:
            rows.append((first,))
    return rows


class DecodedRows(Sequence[tuple[Row, ...]]):
    """A rows event's images, decoded by :func:`decode_rows` the first time they are looked at.

    The compiled path (:mod:`.rowcodec`) writes change events straight from the raw bytes, so
    the rows of mapped tables are never decoded to Python values there; the fence table's are.
    """

    __slots__ = ("_bitmaps", "_body", "_rows", "_schema")

    def __init__(self, schema: TableSchema, body: bytes, bitmaps: tuple[bytes, ...]) -> None:
        self._schema, self._body, self._bitmaps = schema, body, bitmaps
        self._rows: list[tuple[Row, ...]] | None = None

    def _decoded(self) -> list[tuple[Row, ...]]:
        if self._rows is None:
            self._rows = decode_rows(self._schema, self._body, self._bitmaps)
        return self._rows

    def __len__(self) -> int:
        return len(self._decoded())

    @overload
    def __getitem__(self, i: int) -> tuple[Row, ...]: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[tuple[Row, ...]]: ...

    def __getitem__(self, i: int | slice) -> tuple[Row, ...] | Sequence[tuple[Row, ...]]:
        return self._decoded()[i]

    def __iter__(self) -> Iterator[tuple[Row, ...]]:
        return iter(self._decoded())

    def __eq__(self, other: object) -> bool:
        return list(self) == (list(other) if isinstance(other, Sequence) else other)

    __hash__ = None  # type: ignore[assignment]

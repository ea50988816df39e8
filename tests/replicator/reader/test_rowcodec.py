"""The reader's two row paths (replicator.reader.rowcodec), one suite run against both.

* Every test taking ``encoder`` runs once with the pure-Python path and once with the compiled
  extension: values of every type family read back from the envelope as the server stored them,
  keys, versions, transaction indexes, primary-key updates, and the refusals.
* Property tests build random row bytes in the server's formats for random tables of every
  column type (NULLs included) and require the two paths to write the same records, byte for
  byte, or to fail alike.
"""

from __future__ import annotations

import json
import queue
import struct
import uuid
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st

from replicator.errors import ConfigError, UnmappableSchemaError
from replicator.events import ChangeEvent, JsonDoc, Temporal, Value, binlog_version
from replicator.reader import decode, rowcodec
from replicator.reader.changes import TxContext
from replicator.reader.decode import DecodedRows
from replicator.reader.gtid import GtidState, StartAt
from replicator.reader.items import RawRows, RowsChange, RowsKind, TxBegin, TxEnd
from replicator.reader.rowcodec import CompiledEncoder, PythonEncoder, RowEncoder, row_encoder
from replicator.reader.runner import Reader
from replicator.reader.schema import ColumnSpec, T, TableSchema, build_schema
from replicator.reader.start import StartPositions
from replicator.reader.transactions import Pump, QueueItem, SourceFailure
from replicator.settings import load_settings
from replicator.testing import MemoryBinlog, MemoryBroker

COMPILED = rowcodec.compiled_module()
needs_compiled = pytest.mark.skipif(COMPILED is None, reason="the extension is not built (make setup)")
FILE = "mysql-bin.000007"
OFFSET = 4096
TX = TxContext("0-1-9", "0-1-9")


def encoders() -> list[Any]:
    return [pytest.param("python", id="python"),
            pytest.param("compiled", id="compiled", marks=needs_compiled)]


def make(name: str) -> RowEncoder:
    if name == "python":
        return PythonEncoder()
    assert COMPILED is not None
    return CompiledEncoder(COMPILED)


@pytest.fixture(params=encoders())
def encoder(request: pytest.FixtureRequest) -> RowEncoder:
    return make(request.param)


def change(schema: TableSchema, kind: RowsKind, body: bytes, images: int = 1, *,
           bitmaps: tuple[bytes, ...] | None = None) -> RowsChange:
    full = bytes([0xFF]) * ((len(schema.columns) + 7) // 8)
    n = len(schema.columns)
    if n % 8:
        full = full[:-1] + bytes([(1 << (n % 8)) - 1])
    bms = bitmaps or (full,) * images
    return RowsChange(schema, kind, DecodedRows(schema, body, bms), FILE, OFFSET, 1_700_000_000,
                      raw=RawRows(body, bms))


def image(values: list[bytes | None]) -> bytes:
    """A row image: the NULL bitmap, then the non-NULL values' bytes."""
    mask = sum(1 << i for i, v in enumerate(values) if v is None)
    return mask.to_bytes((len(values) + 7) // 8, "little") + b"".join(v for v in values if v is not None)


def events(enc: RowEncoder, ch: RowsChange, first_index: int = 0, generation: int = 0) -> list[ChangeEvent]:
    out = enc.encode(ch, TX, first_index, topic="cdc.d.t", ts_ms=1_700_000_001_000, generation=generation)
    assert {topic for topic, _, _ in out.records} <= {"cdc.d.t"}
    return [ChangeEvent.from_json(value) for _, _, value in out.records]


ID = ColumnSpec("id", T.LONG)


def one_value(enc: RowEncoder, spec: ColumnSpec, raw: bytes) -> Value:
    """``raw`` as the value of column ``c`` (next to an INT key), read back from the envelope."""
    schema = build_schema("d", "t", (ID, spec), ("id",))
    (ev,) = events(enc, change(schema, "insert", image([struct.pack("<i", 1), raw])))
    assert ev.after is not None
    return ev.after[spec.name]


# --------------------------------------------------------------------------- every type family

def _dt2(y: int, mo: int, d: int, h: int, mi: int, s: int) -> bytes:
    packed = ((y * 13 + mo) << 22) | (d << 17) | (h << 12) | (mi << 6) | s
    return (packed + 0x8000000000).to_bytes(5, "big")


_EXACT = b"[18446744073709551616,3.14159265358979323846]"
CASES: list[tuple[str, ColumnSpec, bytes, Value]] = [
    ("tinyint", ColumnSpec("c", T.TINY), b"\x80", -128),
    ("tinyint unsigned", ColumnSpec("c", T.TINY, unsigned=True), b"\xff", 255),
    ("smallint", ColumnSpec("c", T.SHORT), b"\x00\x80", -32768),
    ("smallint unsigned", ColumnSpec("c", T.SHORT, unsigned=True), b"\xff\xff", 65535),
    ("mediumint", ColumnSpec("c", T.INT24), b"\x00\x00\x80", -(2**23)),
    ("mediumint unsigned", ColumnSpec("c", T.INT24, unsigned=True), b"\xff\xff\xff", 2**24 - 1),
    ("int", ColumnSpec("c", T.LONG), b"\x00\x00\x00\x80", -(2**31)),
    ("int unsigned", ColumnSpec("c", T.LONG, unsigned=True), b"\xff" * 4, 2**32 - 1),
    ("bigint", ColumnSpec("c", T.LONGLONG), b"\x00" * 7 + b"\x80", -(2**63)),
    ("bigint unsigned", ColumnSpec("c", T.LONGLONG, unsigned=True), b"\xff" * 8, 2**64 - 1),
    ("decimal(3,1)", ColumnSpec("c", T.NEWDECIMAL, precision=3, decimals=1), bytes([0x81, 5]),
     Decimal("1.5")),
    ("decimal(3,1) negative", ColumnSpec("c", T.NEWDECIMAL, precision=3, decimals=1), bytes([0x7E, 0xFA]),
     Decimal("-1.5")),
    ("decimal(4,2) zero", ColumnSpec("c", T.NEWDECIMAL, precision=4, decimals=2), b"\x80\x00",
     Decimal("0.00")),
    ("decimal(10,8) zero", ColumnSpec("c", T.NEWDECIMAL, precision=10, decimals=8), b"\x80" + b"\x00" * 4,
     Decimal("0E-8")),
    # DECIMAL(65,30): 35 integer digits (8 in 4 bytes, then 3 groups of 9), 30 fraction digits (3 groups of 9,
    # then 3 in 2 bytes).
    ("decimal(65,30)", ColumnSpec("c", T.NEWDECIMAL, precision=65, decimals=30),
     bytes([0x80, 0, 0, 0]) + (123456789).to_bytes(4, "big") * 3 + (987654321).to_bytes(4, "big") * 3
     + (12).to_bytes(2, "big"),
     Decimal("123456789123456789123456789.987654321987654321987654321012")),
    ("decimal(20,0)", ColumnSpec("c", T.NEWDECIMAL, precision=20, decimals=0),
     bytes([0xE3]) + (1).to_bytes(4, "big") + (999999999).to_bytes(4, "big"),
     Decimal("99000000001999999999")),
    ("float", ColumnSpec("c", T.FLOAT), struct.pack("<f", 1.1), 1.1),
    ("double", ColumnSpec("c", T.DOUBLE), struct.pack("<d", -2.5e300), -2.5e300),
    ("year", ColumnSpec("c", T.YEAR), b"\x7c", 2024),
    ("year zero", ColumnSpec("c", T.YEAR), b"\x00", 0),
    ("bit(64)", ColumnSpec("c", T.BIT, bits=64), b"\xff" * 8, 2**64 - 1),
    ("bit(3)", ColumnSpec("c", T.BIT, bits=3), b"\x05", 5),
    ("date", ColumnSpec("c", T.DATE), ((2024 << 9) | (2 << 5) | 29).to_bytes(3, "little"),
     Temporal("date", "2024-02-29")),
    ("date zero", ColumnSpec("c", T.DATE), b"\x00\x00\x00", Temporal("date", "0000-00-00")),
    ("datetime(6)", ColumnSpec("c", T.DATETIME2, fsp=6), _dt2(2020, 1, 2, 3, 4, 5) + (6).to_bytes(3, "big"),
     Temporal("datetime", "2020-01-02T03:04:05.000006")),
    ("datetime(3)", ColumnSpec("c", T.DATETIME2, fsp=3),
     _dt2(2024, 5, 6, 7, 8, 9) + (1230).to_bytes(2, "big"),
     Temporal("datetime", "2024-05-06T07:08:09.123")),
    ("datetime(1)", ColumnSpec("c", T.DATETIME2, fsp=1), _dt2(9999, 12, 31, 23, 59, 59) + b"\x5a",
     Temporal("datetime", "9999-12-31T23:59:59.9")),
    ("datetime zero", ColumnSpec("c", T.DATETIME2, fsp=0), _dt2(0, 0, 0, 0, 0, 0),
     Temporal("datetime", "0000-00-00T00:00:00")),
    ("timestamp(2)", ColumnSpec("c", T.TIMESTAMP2, fsp=2), (1).to_bytes(4, "big") + b"\x05",
     Temporal("timestamp", "1970-01-01T00:00:01.05Z")),
    ("timestamp zero", ColumnSpec("c", T.TIMESTAMP2, fsp=3), b"\x00" * 6,
     Temporal("timestamp", "0000-00-00T00:00:00.000Z")),
    ("timestamp 2038+", ColumnSpec("c", T.TIMESTAMP2), (2**32 - 1).to_bytes(4, "big"),
     Temporal("timestamp", "2106-02-07T06:28:15Z")),
    ("time negative", ColumnSpec("c", T.TIME2), bytes.fromhex("7f3880"), Temporal("time", "-12:30:00")),
    ("time -0.01", ColumnSpec("c", T.TIME2, fsp=2), bytes.fromhex("7fffffff"),
     Temporal("time", "-00:00:00.01")),
    ("time max", ColumnSpec("c", T.TIME2), bytes.fromhex("b46efb"), Temporal("time", "838:59:59")),
    ("time(6)", ColumnSpec("c", T.TIME2, fsp=6), bytes.fromhex("80100f") + (500).to_bytes(3, "big"),
     Temporal("time", "01:00:15.000500")),
    ("old datetime", ColumnSpec("c", T.DATETIME), (20240506070809).to_bytes(8, "little"),
     Temporal("datetime", "2024-05-06T07:08:09")),
    ("old timestamp", ColumnSpec("c", T.TIMESTAMP), (86400).to_bytes(4, "little"),
     Temporal("timestamp", "1970-01-02T00:00:00Z")),
    ("old time", ColumnSpec("c", T.TIME), (-123456).to_bytes(3, "little", signed=True),
     Temporal("time", "-12:34:56")),
    ("varchar utf8mb4", ColumnSpec("c", T.VARCHAR, charset="utf8mb4", max_length=400),
     b"\x0a\x00" + "añ\"\\\n😀".encode(), "añ\"\\\n😀"),
    ("varchar empty", ColumnSpec("c", T.VARCHAR, charset="utf8mb4", max_length=40), b"\x00", ""),
    ("char latin1", ColumnSpec("c", T.STRING, charset="latin1", max_length=10), b"\x03\xe9\x80\x81",
     "é€\x81"),
    ("varchar cp1251", ColumnSpec("c", T.VARCHAR, charset="cp1251", max_length=20), b"\x03\xcf\xf0\xe8",
     "При"),
    ("varchar utf16", ColumnSpec("c", T.VARCHAR, charset="utf16", max_length=80), b"\x04\x00a\x00b", "ab"),
    ("varchar sjis", ColumnSpec("c", T.VARCHAR, charset="sjis", max_length=80), b"\x03a\x82\xa0", "aあ"),
    ("varchar ascii controls", ColumnSpec("c", T.VARCHAR, charset="ascii", max_length=80),
     b"\x03\x00\x1f\x7f",
     "\x00\x1f\x7f"),
    ("text", ColumnSpec("c", T.BLOB, charset="utf8mb4", length_size=2), b"\x03\x00xyz", "xyz"),
    ("longtext", ColumnSpec("c", T.BLOB, charset="utf8mb4", length_size=4), b"\x02\x00\x00\x00\xc3\xbc", "ü"),
    ("binary(4)", ColumnSpec("c", T.STRING, charset="binary", max_length=4), b"\x02\x01\x01",
     b"\x01\x01\x00\x00"),
    ("varbinary", ColumnSpec("c", T.VARCHAR, charset="binary", max_length=300), b"\x03\x00\x00\xff\x10",
     b"\x00\xff\x10"),
    ("blob", ColumnSpec("c", T.BLOB, charset="binary", length_size=2), b"\x05\x00hello", b"hello"),
    ("geometry", ColumnSpec("c", T.GEOMETRY, charset="binary", length_size=4), b"\x01\x00\x00\x00\x07",
     b"\x07"),
    ("enum", ColumnSpec("c", T.ENUM, size=1, values=("x", "y")), b"\x02", "y"),
    ("enum zero", ColumnSpec("c", T.ENUM, size=1, values=("x", "y")), b"\x00", ""),
    ("enum 2 bytes", ColumnSpec("c", T.ENUM, size=2, values=tuple(f"m{i}" for i in range(300))), b"\x2c\x01",
     "m299"),
    ("set", ColumnSpec("c", T.SET, size=1, values=("b", "a", "c")), b"\x07", frozenset({"a", "b", "c"})),
    ("set empty", ColumnSpec("c", T.SET, size=1, values=("a", "b")), b"\x00", frozenset()),
    ("set 8 bytes", ColumnSpec("c", T.SET, size=8, values=tuple(f"s{i}" for i in range(64))),
     (1 << 63 | 1).to_bytes(8, "little"), frozenset({"s0", "s63"})),
    ("json mariadb", ColumnSpec("c", T.BLOB, charset="utf8mb4", length_size=4, is_json=True),
     b"\x0e\x00\x00\x00" + b'{"a":[1,"\xc3\xbc"]}', JsonDoc({"a": [1, "ü"]})),
    ("json mysql", ColumnSpec("c", T.JSON, length_size=4), b"\x02\x00\x00\x00\x04\x01", JsonDoc(True)),
    ("json exact numbers", ColumnSpec("c", T.BLOB, charset="utf8mb4", length_size=4, is_json=True),
     len(_EXACT).to_bytes(4, "little") + _EXACT,
     JsonDoc([2**64, Decimal("3.14159265358979323846")])),
    ("uuid", ColumnSpec("c", T.STRING, charset="binary", max_length=16, text_type="uuid"),
     b"\x10" + bytes(range(16)), "00010203-0405-0607-0809-0a0b0c0d0e0f"),
    ("inet6", ColumnSpec("c", T.STRING, charset="binary", max_length=16, text_type="inet6"),
     b"\x10" + bytes(10) + b"\xff\xff\x01\x02\x03\x04", "::ffff:1.2.3.4"),
    ("inet4", ColumnSpec("c", T.STRING, charset="binary", max_length=4, text_type="inet4"),
     b"\x04\xc0\xa8\x01\x01", "192.168.1.1"),
]

@pytest.mark.parametrize(("spec", "raw", "expected"), [pytest.param(s, r, e, id=n) for n, s, r, e in CASES])
def test_every_type_reads_back_from_the_envelope_as_stored(
        encoder: RowEncoder, spec: ColumnSpec, raw: bytes, expected: Value) -> None:
    value = one_value(encoder, spec, raw)
    assert value == expected
    assert type(value) is type(expected)
    if isinstance(expected, Decimal):
        assert str(value) == str(expected), "the scale's digits are kept"


def test_null_is_an_explicit_null(encoder: RowEncoder) -> None:
    text = ColumnSpec("v", T.VARCHAR, charset="utf8mb4", max_length=10)
    schema = build_schema("d", "t", (ID, text), ("id",))
    (ev,) = events(encoder, change(schema, "insert", image([struct.pack("<i", 3), None])))
    assert ev.after == {"id": 3, "v": None}


KEYED = build_schema("d", "t", (ColumnSpec("b", T.VARCHAR, charset="utf8mb4", max_length=9), ID,
                                ColumnSpec("v", T.LONG)), ("id", "b"))


def row(key: int, b: str, v: int) -> bytes:
    text = b.encode()
    return image([bytes([len(text)]) + text, struct.pack("<i", key), struct.pack("<i", v)])


def test_update_keeping_the_key_is_one_u_event_with_both_images(encoder: RowEncoder) -> None:
    (ev,) = events(encoder, change(KEYED, "update", row(1, "x", 5) + row(1, "x", 6), 2), first_index=4)
    assert (ev.op, ev.pk, ev.before, ev.after) == ("u", {"id": 1, "b": "x"}, {"b": "x", "id": 1, "v": 5},
                                                   {"b": "x", "id": 1, "v": 6})
    assert (ev.tx.index, ev.version, ev.pos.row) == (4, binlog_version(FILE, OFFSET, 0), 0)


def test_a_key_change_is_a_delete_then_an_insert_one_version_apart(encoder: RowEncoder) -> None:
    body = row(1, "x", 5) + row(1, "x", 6) + row(1, "x", 6) + row(2, "x", 6)
    evs = events(encoder, change(KEYED, "update", body, 2), generation=3)
    assert [(e.op, e.pk, e.tx.index, e.pos.row) for e in evs] == [
        ("u", {"id": 1, "b": "x"}, 0, 0), ("d", {"id": 1, "b": "x"}, 1, 1), ("c", {"id": 2, "b": "x"}, 2, 1)]
    assert [e.version for e in evs] == [binlog_version(FILE, OFFSET, 0, 3),
                                        binlog_version(FILE, OFFSET, 1, 3),
                                        binlog_version(FILE, OFFSET, 1, 3, half=1)]


def test_a_double_key_from_minus_zero_to_zero_is_not_a_key_change(encoder: RowEncoder) -> None:
    """-0.0 == 0.0 for the reference, though their JSON differs: one "u" event on both paths."""
    schema = build_schema("d", "t", (ColumnSpec("k", T.DOUBLE), ColumnSpec("v", T.LONG)), ("k",))
    body = image([struct.pack("<d", -0.0), struct.pack("<i", 1)]) + image([struct.pack("<d", 0.0),
                                                                             struct.pack("<i", 2)])
    assert [ev.op for ev in events(encoder, change(schema, "update", body, 2))] == ["u"]


def test_kafka_key_has_sorted_key_columns(encoder: RowEncoder) -> None:
    out = encoder.encode(change(KEYED, "delete", row(7, "é", 0)), TX, 0, topic="t", ts_ms=1, generation=0)
    assert [(topic, key) for topic, key, _ in out.records] == [("t", '{"b":"é","id":7}'.encode())]
    assert (out.rows, out.ops) == (1, {"c": 0, "u": 0, "d": 1})


def test_envelope_carries_position_transaction_and_schema(encoder: RowEncoder) -> None:
    (ev,) = events(encoder, change(KEYED, "insert", row(1, "x", 5)), first_index=2)
    assert (ev.pos.file, ev.pos.offset, ev.pos.gtid) == (FILE, OFFSET, "0-1-9")
    assert (ev.tx.id, ev.tx.index) == ("0-1-9", 2)
    assert (ev.ts_ms, ev.schema, ev.columns) == (1_700_000_001_000, KEYED.fingerprint, KEYED.typed_columns)
    assert (ev.db, ev.table, ev.before) == ("d", "t", None)


def test_a_partial_row_image_is_refused(encoder: RowEncoder) -> None:
    with pytest.raises(UnmappableSchemaError, match="binlog_row_image=FULL"):
        encoder.encode(change(KEYED, "insert", row(1, "x", 5), bitmaps=(b"\x03",)), TX, 0, topic="t", ts_ms=1,
                       generation=0)


def test_a_table_without_primary_key_is_refused(encoder: RowEncoder) -> None:
    schema = build_schema("d", "t", (ID,), ())
    with pytest.raises(UnmappableSchemaError, match="no primary key"):
        encoder.encode(change(schema, "insert", image([b"\x01\x00\x00\x00"])), TX, 0, topic="t", ts_ms=1,
                       generation=0)


def test_invalid_utf8_is_a_decode_error(encoder: RowEncoder) -> None:
    schema = build_schema("d", "t", (ID, ColumnSpec("v", T.VARCHAR, charset="utf8mb4", max_length=9)),
                          ("id",))
    bad = change(schema, "insert", image([b"\x01\x00\x00\x00", b"\x02\xc3\x28"]))
    with pytest.raises(UnicodeDecodeError):
        encoder.encode(bad, TX, 0, topic="t", ts_ms=1, generation=0)


def test_a_change_without_raw_bytes_is_encoded_from_its_rows(encoder: RowEncoder) -> None:
    ch = RowsChange(KEYED, "insert", [({"b": "x", "id": 1, "v": 2},)], FILE, OFFSET, 5)
    out = encoder.encode(ch, TX, 0, topic="t", ts_ms=5000, generation=0)
    assert ChangeEvent.from_json(out.records[0][2]).after == {"b": "x", "id": 1, "v": 2}


def test_a_value_conversion_added_to_the_python_decoder_is_followed_by_both(
        encoder: RowEncoder, monkeypatch: pytest.MonkeyPatch) -> None:
    """A column the reference decoder reads another way than the compiled layout knows (here
    BINARY(16) as UUID text) goes through the reference decoder on the compiled path too."""
    uuid_col = ColumnSpec("u", T.STRING, charset="binary", max_length=16)
    original = decode.column_decoder

    def column_decoder(c: ColumnSpec) -> Any:
        if c.name != "u":
            return original(c)

        def as_text(buf: bytes, pos: int) -> tuple[Value, int]:
            n = buf[pos]
            return str(uuid.UUID(bytes=bytes(buf[pos + 1:pos + 1 + n]).ljust(16, b"\0"))), pos + 1 + n

        return as_text

    monkeypatch.setattr(decode, "column_decoder", column_decoder)
    monkeypatch.setattr(rowcodec, "column_decoder", column_decoder)
    decode.table_decoders.cache_clear()
    rowcodec._table_layout.cache_clear()
    try:
        value = one_value(encoder, uuid_col, b"\x10" + bytes(range(16)))
    finally:
        decode.table_decoders.cache_clear()
        rowcodec._table_layout.cache_clear()
    assert value == "00010203-0405-0607-0809-0a0b0c0d0e0f"


@needs_compiled
def test_a_changed_reference_decoder_under_a_known_name_is_caught_by_the_sample_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when the reference decoder keeps the name the compiled code mirrors (``_bytes``), a
    conversion it now makes (BINARY(16) as UUID text) sends the column through it."""
    spec = ColumnSpec("u", T.STRING, charset="binary", max_length=16)

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        n = buf[pos]
        return str(uuid.UUID(bytes=bytes(buf[pos + 1:pos + 1 + n]).ljust(16, b"\0"))), pos + 1 + n

    dec.__qualname__ = "_bytes.<locals>.dec"
    monkeypatch.setattr(rowcodec, "column_decoder", lambda c: dec)
    assert COMPILED is not None
    assert rowcodec.column_layout(spec)[0] != rowcodec.column_layout(spec, COMPILED.encode)[0]
    assert rowcodec.column_layout(spec, COMPILED.encode)[4] is dec


# --------------------------------------------------------------------------- choosing the path

def test_python_choice_is_the_python_path() -> None:
    assert row_encoder("python").name == "python"


@needs_compiled
def test_auto_choice_is_the_compiled_path_where_it_is_built() -> None:
    assert row_encoder("auto").name == "compiled"


def test_compiled_choice_without_the_build_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rowcodec, "compiled_module", lambda: None)
    with pytest.raises(ConfigError, match="make setup"):
        row_encoder("compiled")


def test_auto_without_the_build_warns_once_and_uses_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rowcodec, "compiled_module", lambda: None)
    monkeypatch.setattr(rowcodec, "_warned", False)
    with structlog.testing.capture_logs() as logs:
        first, second = row_encoder("auto"), row_encoder("auto")
    assert (first.name, second.name) == ("python", "python")
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["rowcodec_unavailable"]


def test_a_reader_configured_compiled_without_the_build_does_not_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rowcodec, "compiled_module", lambda: None)
    settings = load_settings(tables=[{"source": "d.t"}], reader={"decoder": "compiled"})
    with pytest.raises(ConfigError, match=r"reader\.decoder is 'compiled'"):
        Reader(settings, source_factory=MemoryBinlog().open, sink_factory=MemoryBroker().sink,
               positions=StartPositions(lambda: (FILE, 4), lambda: [FILE], None))


# --------------------------------------------------------------------------- both paths, random rows

_DIG2BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
Gen = Callable[[st.DrawFn], bytes]


def _ints(width: int) -> Gen:
    return lambda draw: draw(st.binary(min_size=width, max_size=width))


def _decimal(p: int, s: int) -> Gen:
    def gen(draw: st.DrawFn) -> bytes:
        intg = p - s
        parts: list[tuple[int, int]] = []  # (digits, bytes)
        if intg % 9:
            parts.append((intg % 9, _DIG2BYTES[intg % 9]))
        parts += [(9, 4)] * (intg // 9) + [(9, 4)] * (s // 9)
        if s % 9:
            parts.append((s % 9, _DIG2BYTES[s % 9]))
        groups = [draw(st.integers(0, 10**d - 1)) for d, _ in parts]
        b = bytearray(b"".join(g.to_bytes(n, "big") for g, (_, n) in zip(groups, parts, strict=True)))
        if draw(st.booleans()) and any(groups):  # negative (MySQL never stores a negative zero)
            b = bytearray(x ^ 0xFF for x in b)
        b[0] ^= 0x80
        return bytes(b)

    return gen


def _prefixed(size: int, payload: st.SearchStrategy[bytes]) -> Gen:
    return lambda draw: (lambda raw: len(raw).to_bytes(size, "little") + raw)(draw(payload))


def _text(charset: str, codec: str, size: int = 1) -> Gen:
    texts = st.text(max_size=12).map(lambda t: t.encode(codec, "ignore"))
    return _prefixed(size, st.one_of(texts, st.binary(max_size=12)) if charset == "latin1" else texts)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)

# (spec, bytes of a value, usable as a key column)
TYPES: list[tuple[ColumnSpec, Gen, bool]] = [
    *[(ColumnSpec("i", t, unsigned=u), _ints(w), True)
      for t, w in ((T.TINY, 1), (T.SHORT, 2), (T.INT24, 3), (T.LONG, 4), (T.LONGLONG, 8))
      for u in (False, True)],
    *[(ColumnSpec("n", T.NEWDECIMAL, precision=p, decimals=s), _decimal(p, s), True)
      for p, s in ((1, 0), (3, 1), (9, 9), (10, 2), (18, 9), (19, 4), (38, 10), (65, 0), (65, 30), (12, 8))],
    (ColumnSpec("f", T.FLOAT), _ints(4), True),
    (ColumnSpec("g", T.DOUBLE), _ints(8), True),
    (ColumnSpec("y", T.YEAR), _ints(1), True),
    *[(ColumnSpec("b", T.BIT, bits=bits), _ints((bits + 7) // 8), True) for bits in (1, 9, 33, 64)],
    (ColumnSpec("d", T.DATE), _ints(3), True),
    *[(ColumnSpec("dt", T.DATETIME2, fsp=f), _ints(5 + (0, 1, 1, 2, 2, 3, 3)[f]), True) for f in range(7)],
    *[(ColumnSpec("ts", T.TIMESTAMP2, fsp=f), _ints(4 + (0, 1, 1, 2, 2, 3, 3)[f]), True) for f in range(7)],
    *[(ColumnSpec("tm", T.TIME2, fsp=f), _ints(3 + (0, 1, 1, 2, 2, 3, 3)[f]), True) for f in range(7)],
    (ColumnSpec("od", T.DATETIME), _ints(8), True),
    (ColumnSpec("ot", T.TIMESTAMP), _ints(4), True),
    (ColumnSpec("oti", T.TIME), _ints(3), True),
    (ColumnSpec("s", T.VARCHAR, charset="utf8mb4", max_length=400), _text("utf8mb4", "utf-8", 2), True),
    (ColumnSpec("s", T.STRING, charset="utf8mb3", max_length=30), _text("utf8mb3", "utf-8"), True),
    (ColumnSpec("s", T.VARCHAR, charset="latin1", max_length=30), _text("latin1", "cp1252"), True),
    (ColumnSpec("s", T.VARCHAR, charset="cp1251", max_length=30), _text("cp1251", "cp1251"), True),
    (ColumnSpec("s", T.VARCHAR, charset="ucs2", max_length=60), _text("ucs2", "utf-16-be"), True),
    (ColumnSpec("s", T.VARCHAR, charset="gbk", max_length=60), _text("gbk", "gbk"), True),
    (ColumnSpec("s", T.BLOB, charset="utf8mb4", length_size=3), _text("utf8mb4", "utf-8", 3), False),
    (ColumnSpec("x", T.STRING, charset="binary", max_length=16), _prefixed(1, st.binary(max_size=16)), True),
    (ColumnSpec("x", T.VARCHAR, charset="binary", max_length=300), _prefixed(2, st.binary(max_size=20)),
     True),
    (ColumnSpec("x", T.BLOB, charset="binary", length_size=1), _prefixed(1, st.binary(max_size=20)), False),
    (ColumnSpec("x", T.GEOMETRY, charset="binary", length_size=4), _prefixed(4, st.binary(max_size=20)),
     False),
    (ColumnSpec("e", T.ENUM, size=1, values=("b", "a", "c")), lambda draw: bytes([draw(st.integers(0, 5))]),
     True),
    (ColumnSpec("e", T.ENUM, size=2, values=tuple(f"v{i}" for i in range(260))),
     lambda draw: draw(st.integers(0, 270)).to_bytes(2, "little"), True),
    (ColumnSpec("z", T.SET, size=1, values=("b", "a", "é", "c")), _ints(1), True),
    (ColumnSpec("z", T.SET, size=3, values=tuple(f"m{i:02d}" for i in range(20))), _ints(3), True),
    (ColumnSpec("j", T.BLOB, charset="utf8mb4", length_size=4, is_json=True),
     _prefixed(4, _JSON.map(lambda doc: json.dumps(doc, separators=(",", ":")).encode())), False),
    *[(ColumnSpec("t", T.STRING, charset="binary", max_length=n, text_type=kind),
       _prefixed(1, st.binary(min_size=n, max_size=n)), True)
      for kind, n in (("uuid", 16), ("inet6", 16), ("inet4", 4))],
]


@st.composite
def rows_events(draw: st.DrawFn) -> RowsChange:
    picked = draw(st.lists(st.sampled_from(range(len(TYPES))), min_size=1, max_size=5))
    specs = [replace(TYPES[i][0], name=f"c{n}") for n, i in enumerate(picked)]
    gens = [TYPES[i][1] for i in picked]
    keyable = [n for n, i in enumerate(picked) if TYPES[i][2]]
    pk = draw(st.permutations(keyable))[:draw(st.integers(1, 2))] if keyable else []
    if not pk:  # a key column of its own
        specs.append(ColumnSpec(f"c{len(specs)}", T.LONG))
        gens.append(_ints(4))
        pk = [len(specs) - 1]
    schema = build_schema("db", "t", tuple(specs), tuple(specs[i].name for i in pk))
    kind: RowsKind = draw(st.sampled_from(["insert", "update", "delete"]))

    def one_image() -> bytes:
        nulls = [i not in pk and draw(st.booleans()) for i in range(len(specs))]
        return image([None if nulls[i] else gens[i](draw) for i in range(len(specs))])

    body = b""
    for _ in range(draw(st.integers(1, 3))):
        before = one_image()
        body += before
        if kind == "update":
            body += before if draw(st.booleans()) else one_image()
    return change(schema, kind, body, 2 if kind == "update" else 1)


def outcome(enc: RowEncoder, ch: RowsChange, first: int, generation: int) -> Any:
    try:
        out = enc.encode(ch, TX, first, topic="cdc.db.t", ts_ms=1_700_000_000_123, generation=generation)
    except (UnicodeError, ValueError) as exc:
        return type(exc)
    return out.records, out.rows, out.ops


@needs_compiled
@settings(max_examples=400)
@given(rows_events(), st.integers(0, 10**6), st.integers(0, 2047))
def test_both_paths_write_the_same_records(ch: RowsChange, first: int, generation: int) -> None:
    expected = outcome(PythonEncoder(), ch, first, generation)
    assert outcome(make("compiled"), ch, first, generation) == expected


@needs_compiled
@given(st.text(), st.sampled_from(["utf8mb4", "latin1", "ascii", "cp1251", "utf16", "sjis", "big5"]))
def test_both_paths_write_the_same_strings(text: str, charset: str) -> None:
    codec = {"utf8mb4": "utf-8", "latin1": "cp1252", "ascii": "ascii", "cp1251": "cp1251",
             "utf16": "utf-16-be", "sjis": "shift_jis", "big5": "big5"}[charset]
    raw = text.encode(codec, "ignore")[:60000]
    spec = ColumnSpec("c", T.VARCHAR, charset=charset, max_length=65000)
    values = [one_value(make(n), spec, len(raw).to_bytes(2, "little") + raw) for n in ("python", "compiled")]
    assert values[0] == values[1] == raw.decode(codec, "strict")


# --------------------------------------------------------------------------- in the pump

def test_row_bytes_that_do_not_decode_stop_the_pump_with_an_unmappable_schema(encoder: RowEncoder) -> None:
    """A rows event shorter than its images (an INT cut after two bytes): the transaction fails
    with UnmappableSchemaError naming the table and position, on either path."""
    cut = change(KEYED, "insert", row(1, "x", 5)[:-2])
    log = MemoryBinlog([[TxBegin("0-1-1", FILE, OFFSET - 50, 0), cut, TxEnd(FILE, OFFSET + 100, 1)]])
    out: queue.Queue[QueueItem] = queue.Queue()
    pump = Pump(log.open(StartAt(file=FILE, offset=4)), {"d.t": "cdc.d.t"}, GtidState(""), out,
                encoder=encoder)
    pump.start()
    try:
        item = out.get(timeout=10)
    finally:
        pump.halt.set()
        pump.source.close()
        pump.join(5)
    assert isinstance(item, SourceFailure)
    assert isinstance(item.error, UnmappableSchemaError)
    assert f"d.t at {FILE}:{OFFSET} could not be decoded" in str(item.error)

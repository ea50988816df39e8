"""Row-image decoding from raw binlog bytes (pure; the byte layouts are the server's)."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.errors import UnmappableSchemaError
from replicator.events import JsonDoc, Temporal
from replicator.reader.decode import (
    column_decoder,
    decode_decimal,
    decode_rows,
    shortest_float32,
)
from replicator.reader.schema import ColumnSpec, T, build_schema
from replicator.reader.temporal import time2_text


def dec(spec: ColumnSpec, raw: bytes) -> object:
    value, pos = column_decoder(spec)(raw, 0)
    assert pos == len(raw), "the decoder consumed exactly the value's bytes"
    return value


def test_unsigned_bigint_max_is_read_as_unsigned() -> None:
    assert dec(ColumnSpec("c", T.LONGLONG, unsigned=True), b"\xff" * 8) == 2**64 - 1


def test_signed_mediumint_min() -> None:
    assert dec(ColumnSpec("c", T.INT24), b"\x00\x00\x80") == -(2**23)


def test_decimal_65_30_keeps_every_digit() -> None:
    # 1.5 in DECIMAL(3,1): 2 integer digits in 1 byte, 1 fraction digit in 1 byte; sign bit set if >= 0.
    assert decode_decimal(bytes([0x80 | 1, 5]), 3, 1) == Decimal("1.5")


def test_negative_decimal_inverts_the_bytes() -> None:
    assert decode_decimal(bytes([0x7E, 0xFA]), 3, 1) == Decimal("-1.5")


def test_decimal_keeps_trailing_zeros_of_the_scale() -> None:
    assert str(decode_decimal(bytes([0x80, 0, 0, 0, 0]), 4, 2)) == "0.00"


def test_zero_date_is_kept_as_text() -> None:
    assert dec(ColumnSpec("c", T.DATE), b"\x00\x00\x00") == Temporal("date", "0000-00-00")


def test_datetime2_with_microseconds() -> None:
    # 2020-01-02 03:04:05.000006: packed (year*13+month)<<22 | day<<17 | hour<<12 | minute<<6 | second
    ym = 2020 * 13 + 1
    packed = (ym << 22) | (2 << 17) | (3 << 12) | (4 << 6) | 5
    raw = (packed + 0x8000000000).to_bytes(5, "big") + (6).to_bytes(3, "big")
    assert dec(ColumnSpec("c", T.DATETIME2, fsp=6), raw) == Temporal("datetime", "2020-01-02T03:04:05.000006")


def test_zero_timestamp_is_kept_and_marked_utc() -> None:
    assert dec(ColumnSpec("c", T.TIMESTAMP2, fsp=3), b"\x00" * 6) == Temporal(
        "timestamp", "0000-00-00T00:00:00.000Z"
    )


def test_timestamp_is_rendered_in_utc_whatever_the_local_zone() -> None:
    raw = (1).to_bytes(4, "big") + (5).to_bytes(1, "big")  # 1 s after the epoch, .05 with fsp 2
    assert dec(ColumnSpec("c", T.TIMESTAMP2, fsp=2), raw) == Temporal("timestamp", "1970-01-01T00:00:01.05Z")


@pytest.mark.parametrize(
    ("raw", "fsp", "text"),
    [
        (bytes.fromhex("7f3880"), 0, "-12:30:00"),
        (bytes.fromhex("7fffffff"), 2, "-00:00:00.01"),
        (bytes.fromhex("800000"), 0, "00:00:00"),
        (bytes.fromhex("b46efb"), 0, "838:59:59"),
    ],
)
def test_time2_negative_and_fractional(raw: bytes, fsp: int, text: str) -> None:
    assert time2_text(raw, fsp) == text


def test_binary_is_padded_with_zero_bytes_to_its_length() -> None:
    spec = ColumnSpec("c", T.STRING, charset="binary", max_length=4)
    assert dec(spec, b"\x01\x01") == b"\x01\x00\x00\x00"


def test_latin1_text_decodes_mysql_latin1_including_undefined_cp1252_bytes() -> None:
    spec = ColumnSpec("c", T.VARCHAR, charset="latin1", max_length=20)
    assert dec(spec, b"\x03\xe9\x80\x81") == "é€\x81"


def test_empty_set_is_an_empty_frozenset_not_null() -> None:
    assert dec(ColumnSpec("c", T.SET, size=1, values=("a", "b")), b"\x00") == frozenset()


def test_set_members_from_bitmask() -> None:
    assert dec(ColumnSpec("c", T.SET, size=1, values=("a", "b", "c")), b"\x05") == frozenset({"a", "c"})


def test_enum_index_maps_to_member_and_zero_to_empty_string() -> None:
    spec = ColumnSpec("c", T.ENUM, size=1, values=("x", "y"))
    assert (dec(spec, b"\x02"), dec(spec, b"\x00")) == ("y", "")


def test_bit64_is_its_unsigned_value() -> None:
    assert dec(ColumnSpec("c", T.BIT, bits=64), b"\xff" * 8) == 2**64 - 1


def test_year_zero_stays_zero() -> None:
    assert (dec(ColumnSpec("c", T.YEAR), b"\x00"), dec(ColumnSpec("c", T.YEAR), b"\x7c")) == (0, 2024)


def test_mariadb_json_text_becomes_a_document() -> None:
    spec = ColumnSpec("c", T.BLOB, charset="utf8mb4", length_size=4, is_json=True)
    raw = b'{"a":[1,"\xc3\xbc"]}'
    assert dec(spec, len(raw).to_bytes(4, "little") + raw) == JsonDoc({"a": [1, "ü"]})


def test_float_is_the_shortest_decimal_of_the_stored_float32() -> None:
    assert dec(ColumnSpec("c", T.FLOAT), struct.pack("<f", 1.1)) == 1.1


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_shortest_float32_round_trips(f: float) -> None:
    s = shortest_float32(f)
    assert struct.pack("<f", s) == struct.pack("<f", f)


def test_decode_rows_reads_nulls_and_both_update_images() -> None:
    schema = build_schema(
        "d",
        "t",
        (ColumnSpec("id", T.LONG), ColumnSpec("v", T.VARCHAR, charset="utf8mb4", max_length=40)),
        ("id",),
    )
    before = b"\x00" + struct.pack("<i", 1) + b"\x01a"
    after = b"\x02" + struct.pack("<i", 1)  # v is NULL
    rows = decode_rows(schema, before + after, (b"\x03", b"\x03"))
    assert rows == [({"id": 1, "v": "a"}, {"id": 1, "v": None})]


def test_a_partial_row_image_is_refused() -> None:
    schema = build_schema("d", "t", (ColumnSpec("id", T.LONG), ColumnSpec("v", T.LONG)), ("id",))
    with pytest.raises(UnmappableSchemaError, match="binlog_row_image=FULL"):
        decode_rows(schema, b"", (b"\x01",))


def test_unknown_type_is_an_unmappable_schema() -> None:
    with pytest.raises(UnmappableSchemaError, match="type code 99"):
        column_decoder(ColumnSpec("c", 99))

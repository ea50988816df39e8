"""The change-event envelope: lossless round trip, strict parsing, ordered versions."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.errors import BadEventError
from replicator.events import (
    GENERATION_SHIFT,
    MAX_GENERATION,
    ChangeEvent,
    JsonDoc,
    Position,
    Temporal,
    TxInfo,
    binlog_version,
    decode_value,
    encode_key,
    encode_row,
    encode_value,
    json_text,
    parse_json_exact,
    snapshot_version,
    split_version,
    with_generation,
)

json_docs = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=10,
)
values = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.binary(),
    st.builds(Temporal, st.sampled_from(["date", "datetime", "timestamp", "time"]), st.text(min_size=1)),
    st.frozensets(st.text(min_size=1)),
    st.builds(JsonDoc, json_docs),
)


@given(values)
def test_every_value_survives_the_wire(v: object) -> None:
    import orjson

    assert decode_value(orjson.loads(orjson.dumps(encode_value(v)))) == v  # type: ignore[arg-type]


def _reference_envelope(e: ChangeEvent) -> bytes:
    """The envelope built through encode_row, the pure-Python reference of to_json's fast path."""
    import orjson

    doc: dict[str, object] = {
        "v": 1, "op": e.op, "db": e.db, "table": e.table, "pk": encode_row(e.pk),
        "pos": {"file": e.pos.file, "offset": e.pos.offset, "row": e.pos.row, "gtid": e.pos.gtid},
        "version": e.version, "ts_ms": e.ts_ms, "tx": {"id": e.tx.id, "index": e.tx.index},
        "schema": e.schema, "columns": [list(c) for c in e.columns],
    }
    if e.before is not None:
        doc["before"] = encode_row(e.before)
    if e.after is not None:
        doc["after"] = encode_row(e.after)
    return orjson.dumps(doc)


rows = st.dictionaries(st.text(max_size=8), values, max_size=6)


@given(rows, rows)
def test_the_envelope_is_byte_for_byte_the_reference_encoding_for_every_value(
        before: dict[str, object], after: dict[str, object]) -> None:
    e = _event(before=before, after=after, pk={"id": 1, "k": Decimal("-0.10")})
    assert e.to_json() == _reference_envelope(e)
    assert ChangeEvent.from_json(e.to_json()) == e


def test_json_numbers_beyond_a_double_travel_exactly_as_jsontext_in_both_encodings() -> None:
    doc = JsonDoc({"big": 18446744073709551616, "pi": Decimal("3.14159265358979323846264338327950288"),
                   "neg": [-(2**70), 1.5]})
    e = _event(after={"id": 1, "doc": doc})
    assert e.to_json() == _reference_envelope(e)
    assert b'"$jsontext"' in e.to_json() and b"18446744073709551616" in e.to_json()
    assert ChangeEvent.from_json(e.to_json()).after == {"id": 1, "doc": doc}


def test_json_text_parses_numbers_exactly_and_keeps_doubles_where_they_are_exact() -> None:
    doc = parse_json_exact('{"a": 18446744073709551616, "b": 0.1, "c": 1.10, "d": 2.5e-3, '
                           '"e": 3.14159265358979323846, "f": "1.5e3 in a string"}')
    assert doc == {"a": 18446744073709551616, "b": 0.1, "c": 1.1, "d": 0.0025,
                   "e": Decimal("3.14159265358979323846"), "f": "1.5e3 in a string"}
    assert isinstance(doc["e"], Decimal) and isinstance(doc["b"], float)
    assert parse_json_exact(json_text(doc)) == doc


def test_a_json_document_that_looks_like_a_tag_stays_a_document() -> None:
    doc = JsonDoc({"$bytes": "AAA="})
    assert decode_value(encode_value(doc)) == doc


def _event(**kw: object) -> ChangeEvent:
    base: dict[str, object] = dict(
        op="u", db="shop", table="users", pk={"id": 1}, before={"id": 1, "n": ""},
        after={"id": 1, "n": Decimal("1.50")}, pos=Position("mysql-bin.000003", 1234, 2, "0-1-5"),
        version=binlog_version("mysql-bin.000003", 1234, 2), ts_ms=1, tx=TxInfo("0-1-5", 0),
        schema="abc", columns=(("id", "int(11)"), ("n", "decimal(10,2)")),
    )
    base.update(kw)
    return ChangeEvent(**base)  # type: ignore[arg-type]


def test_event_round_trips() -> None:
    e = _event()
    assert ChangeEvent.from_json(e.to_json()) == e


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not-json"),
        (b"[1]", "bad-envelope"),
        (b'{"v": 99}', "unknown-version"),
        (b'{"v": 1, "op": "x"}', "bad-op"),
        (b'{"v": 1, "op": "c"}', "malformed"),
    ],
)
def test_bad_payloads_raise_bad_event_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(BadEventError) as exc:
        ChangeEvent.from_json(payload)
    assert exc.value.reason == reason


def test_delete_with_an_after_image_is_rejected() -> None:
    bad = _event(op="d").to_json()
    with pytest.raises(BadEventError, match="wrong row images"):
        ChangeEvent.from_json(bad)


def test_kafka_key_is_independent_of_column_order() -> None:
    assert encode_key({"a": 1, "b": "x"}) == encode_key({"b": "x", "a": 1})


@given(st.integers(1, 2**20 - 2), st.integers(4, 2**32 - 30_002), st.integers(0, 10_000))
def test_versions_increase_along_the_binlog(seq: int, offset: int, row: int) -> None:
    file = f"mysql-bin.{seq:06d}"
    delete, insert = binlog_version(file, offset, row), binlog_version(file, offset, row, half=1)
    assert delete < insert < binlog_version(file, offset, row + 1)
    assert insert < binlog_version(f"mysql-bin.{seq + 1:06d}", 4, 0)
    # The next event starts after a 19-byte header and this row's images, two bytes at least each.
    assert insert < binlog_version(file, offset + 19 + 2 * (row + 1), 0)
    assert insert < 2**63


@given(st.integers(1, 2**20 - 2), st.integers(4, 2**32 - 30_002), st.integers(0, 10_000),
       st.integers(0, 10_000))
def test_a_version_is_never_below_the_one_the_previous_formula_gave_nor_above_the_next_event(
        seq: int, offset: int, row: int, later_row: int) -> None:
    # Before the halves, base = offset + row: a pipeline upgraded mid-run never regresses an item.
    file = f"mysql-bin.{seq:06d}"
    old = (seq << 32) + offset + row
    assert binlog_version(file, offset, row) >= old
    next_event = offset + 19 + 2 * (row + 1)
    assert binlog_version(file, offset, row, half=1) < (seq << 32) + next_event + later_row


def test_snapshot_version_is_below_every_later_event_and_not_below_earlier_ones() -> None:
    head = ("mysql-bin.000007", 5000)
    snap = snapshot_version(*head)
    assert snap < binlog_version(*head, 0)
    assert snap >= binlog_version("mysql-bin.000007", 4000, 480, half=1)  # an event that ended at 5000


# --------------------------------------------------------------------------- generations (docs/design.md)

positions = st.tuples(st.integers(0, 999_999), st.integers(4, 2**32 - 10_002), st.integers(0, 10_000))
generations = st.integers(0, MAX_GENERATION)


def test_generation_zero_is_the_base_itself() -> None:
    # (sequence << 32) + offset + 2 * row + half
    assert binlog_version("mysql-bin.000003", 1234, 2) == (3 << 32) + 1238
    assert binlog_version("mysql-bin.000003", 1234, 2, half=1) == (3 << 32) + 1239
    assert binlog_version("mysql-bin.000003", 1234, 2, 0) == binlog_version("mysql-bin.000003", 1234, 2)
    assert snapshot_version("mysql-bin.000003", 1234, 0) == (3 << 32) + 1233


@given(positions, generations)
def test_a_version_splits_into_its_generation_and_binlog_base(pos: tuple[int, int, int], g: int) -> None:
    seq, offset, row = pos
    file = f"mysql-bin.{seq:06d}"
    v = binlog_version(file, offset, row, g)
    assert split_version(v) == (g, binlog_version(file, offset, row))
    assert v == g << GENERATION_SHIFT | binlog_version(file, offset, row)
    assert 0 <= v < 2**63


@given(positions, positions, st.integers(0, MAX_GENERATION - 1))
def test_a_higher_generation_beats_any_position_of_a_lower_one(
    a: tuple[int, int, int], b: tuple[int, int, int], g: int
) -> None:
    early = binlog_version(f"mysql-bin.{a[0]:06d}", a[1], a[2], g)
    late = binlog_version(f"mysql-bin.{b[0]:06d}", b[1], b[2], g + 1)
    assert early < late
    assert snapshot_version(f"mysql-bin.{a[0]:06d}", a[1], g) < late


@given(positions, positions, generations)
def test_within_a_generation_versions_follow_the_binlog(
    a: tuple[int, int, int], b: tuple[int, int, int], g: int
) -> None:
    va, vb = (binlog_version(f"mysql-bin.{p[0]:06d}", p[1], p[2], g) for p in (a, b))
    base_a, base_b = (binlog_version(f"mysql-bin.{p[0]:06d}", p[1], p[2]) for p in (a, b))
    assert (va < vb) == (base_a < base_b)


def test_application_microseconds_fit_the_base_until_2112() -> None:
    at_2100 = 4_102_444_800_000_000  # 2100-01-01T00:00:00Z in microseconds
    assert split_version(with_generation(1, at_2100)) == (1, at_2100)


@pytest.mark.parametrize(
    "bad",
    [
        lambda: binlog_version("mysql-bin.1048576", 4),  # a seven-digit binlog sequence: beyond 20 bits
        lambda: binlog_version("mysql-bin.1048575", 2**32 - 1, 1),  # a base past 52 bits
        lambda: binlog_version("mysql-bin.000001", 4, 0, MAX_GENERATION + 1),
        lambda: binlog_version("mysql-bin.000001", 4, 0, -1),
        lambda: snapshot_version("mysql-bin.000000", 0),  # no base below the first position
        lambda: split_version(-1),
    ],
)
def test_out_of_range_versions_are_refused(bad: Callable[[], int]) -> None:
    with pytest.raises(ValueError):
        bad()

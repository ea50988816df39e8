"""Row digests, folds and range location (pure)."""

from __future__ import annotations

from decimal import Decimal

from replicator.events import JsonDoc, Temporal
from replicator.mapping.coltypes import parse_column_type
from validators.checksum import (
    Fold,
    Range,
    digest_sql,
    locate,
    order_key,
    orderable,
    row_digest,
    sql_exact,
    value_text,
)


def ct(text: str):  # type: ignore[no-untyped-def]
    return parse_column_type(text)


def test_canonical_texts_are_what_mysql_casts_to() -> None:
    assert value_text(ct("decimal(10,3)"), Decimal("1.5")) == "1.500"
    assert value_text(ct("decimal(10,0)"), Decimal("1.2E+2")) == "120"
    dt = Temporal("datetime", "2024-01-02T03:04:05.120")
    assert value_text(ct("datetime(3)"), dt) == "2024-01-02 03:04:05.120"
    assert value_text(ct("timestamp"), Temporal("timestamp", "2024-01-02T03:04:05Z")) == "2024-01-02 03:04:05"
    assert value_text(ct("time(2)"), Temporal("time", "-838:59:59.00")) == "-838:59:59.00"
    assert value_text(ct("varbinary(4)"), b"\x00\xff") == "00FF"
    assert value_text(ct("set('b','a','c')"), frozenset({"a", "b"})) == "b,a"
    assert value_text(ct("set('b','a')"), frozenset()) is None, "an empty SET reads back as NULL"
    assert value_text(ct("json"), JsonDoc(None)) is None
    assert value_text(ct("int"), None) is None


def test_json_documents_digest_alike_whatever_their_key_order_or_number_spelling() -> None:
    cols = [("j", ct("json"))]
    a = row_digest({"j": JsonDoc({"b": 1.0, "a": [Decimal("2.50"), 3]})}, cols)
    b = row_digest({"j": JsonDoc({"a": [2.5, Decimal(3)], "b": 1})}, cols)
    assert a == b


def test_null_and_empty_string_and_lengths_keep_rows_apart() -> None:
    cols = [("a", ct("varchar(9)")), ("b", ct("varchar(9)"))]
    rows = ({"a": None, "b": ""}, {"a": "", "b": None}, {"a": "N", "b": ""}, {"a": "1:x", "b": ""},
            {"a": "1", "b": ":x"}, {"a": ",", "b": ""})
    digests = {row_digest(r, cols) for r in rows}
    assert len(digests) == 6


def test_which_tables_fold_in_sql_and_which_keys_sort_like_mysql() -> None:
    assert sql_exact([("a", ct("int")), ("b", ct("datetime(6)")), ("c", ct("set('x')"))])
    assert not sql_exact([("a", ct("double"))]) and not sql_exact([("a", ct("json"))])
    assert orderable([("id", ct("bigint unsigned")), ("d", ct("date"))])
    assert not orderable([("email", ct("varchar(50)"))])
    assert not orderable([])
    assert "MD5(CONCAT_WS(" in digest_sql([("a", ct("int"))])


def test_folds_are_order_free_and_a_range_splits_into_halves() -> None:
    one, two = Fold(), Fold()
    for d in (5, 9, 12):
        one.add(d)
    for d in (12, 5, 9):
        two.add(d)
    assert one == two
    left = Fold()
    left.add(5)
    assert one.minus(left) == Fold(2, 9 ^ 12)


def test_items_are_located_in_the_range_whose_upper_bound_is_the_first_not_below_them() -> None:
    his = [order_key((10,)), order_key((20,)), None]
    assert [locate(his, (k,)) for k in (1, 10, 11, 20, 21, 10**9)] == [0, 0, 1, 1, 2, 2]
    assert Range((10,), (20,)).holds((20,)) and not Range((10,), (20,)).holds((10,))


def test_the_digest_read_straight_off_an_item_is_the_row_digest() -> None:
    from replicator.mapping.mapper import TableMapper
    from replicator.settings import load_settings
    from validators.checksum import item_digester

    settings = load_settings(tables=[{"source": "db.t", "key": {"pk": "T#{id}"}, "types": {"n": "string"}}])
    columns_sql = (("id", "bigint(20)"), ("name", "varchar(40)"), ("n", "int(11)"), ("d", "decimal(10,2)"),
                   ("at", "datetime(6)"), ("ts", "timestamp(3)"), ("day", "date"), ("b", "varbinary(8)"),
                   ("s", "set('x','y')"), ("j", "json"), ("f", "double"))
    mapper = TableMapper(settings.tables[0], columns_sql, ("id",))
    columns = [(c, mapper.types[c]) for c in mapper.attributes]
    digest = item_digester(mapper, columns)
    rows = [
        {"id": 1, "name": "ä", "n": 5, "d": Decimal("1.50"),
         "at": Temporal("datetime", "2024-01-02T03:04:05.000001"),
         "ts": Temporal("timestamp", "2024-01-02T03:04:05.120Z"), "day": Temporal("date", "2024-01-02"),
         "b": b"\x00\x01", "s": frozenset({"y"}), "j": JsonDoc({"a": [1, 2.5]}), "f": 0.1},
        {"id": 2, "name": "", "n": None, "d": None, "at": None, "ts": None, "day": None, "b": None,
         "s": frozenset(), "j": None, "f": None},
    ]
    for row in rows:
        item = mapper.to_item(row)
        assert digest(item) == row_digest(mapper.to_row(item), columns)

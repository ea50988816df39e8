"""Secondary access patterns: config checks, GSI shape, sparse items, and the two queries."""

from __future__ import annotations

import functools
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from replicator.errors import ConfigError, KeyShapeError, UnknownAccessPatternError, UnmappableValueError
from replicator.events import Temporal
from replicator.mapping import (
    DELETED_ATTR,
    TableMapper,
    dynamodb_query_params,
    mysql_condition,
    mysql_query,
)
from replicator.mapping.coltypes import parse_column_type
from replicator.mapping.indexes import index_key_type, template_prefix
from replicator.mapping.values import encode_value
from replicator.settings import IndexSpec, KeySpec, TableMapping
from tests.replicator.mapping.strategies import COLUMNS, value_for

COLS = (("id", "int(11)"), ("email", "varchar(255)"), ("country", "char(2)"), ("created", "datetime(6)"),
        ("amount", "decimal(12,2)"), ("score", "double"), ("ratio", "float"), ("hash", "binary(4)"),
        ("notes", "text"), ("secret", "varchar(10)"), ("dur", "time"), ("doc", "json"))
BY_EMAIL = {"name": "by_email", "pk": "email"}
BY_CREATED = {"name": "by_created", "pk": "country", "sk": "created"}


def mapper(*indexes: dict[str, Any], **kw: Any) -> TableMapper:
    return TableMapper(TableMapping(source="shop.users", indexes=indexes, **kw), COLS, ("id",))


def row(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": 7, "email": "a@b.c", "country": "de",
        "created": Temporal("datetime", "2024-01-31T10:00:00.123456"), "amount": Decimal("1.50"),
        "score": 2.5, "ratio": 1.1, "hash": b"\x01\0\0\0", "notes": None, "secret": "x",
        "dur": Temporal("time", "01:00:00"), "doc": None}
    base.update(kw)
    return base


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize("name", ["ab", "by email", "by/email", "x" * 256])
def test_an_index_name_dynamodb_would_refuse_is_a_settings_error(name: str) -> None:
    with pytest.raises(ValidationError, match="name"):
        IndexSpec(name=name, pk="email")


def test_two_access_patterns_with_one_name_are_a_settings_error() -> None:
    with pytest.raises(ValidationError, match="declared twice"):
        TableMapping(source="shop.users",
                     indexes=[BY_EMAIL, {"name": "by_email", "pk": "id"}])


def test_an_access_pattern_keyed_twice_by_one_column_is_a_settings_error() -> None:
    with pytest.raises(ValidationError, match="pk and sk are both"):
        IndexSpec(name="by_email", pk="email", sk="email")


# --------------------------------------------------------------------------- validate()


def test_a_declared_index_on_supported_columns_validates() -> None:
    mapper(BY_EMAIL, BY_CREATED).validate()


def test_an_index_on_an_unknown_column_names_the_option_and_the_columns() -> None:
    with pytest.raises(ConfigError, match=r"tables\[source=shop.users\]\.indexes\[by_x\]\.sk: 'nope' is "
                                          r"not a column.*'email'"):
        mapper({"name": "by_x", "pk": "email", "sk": "nope"}).validate()


def test_an_index_on_an_excluded_column_says_to_keep_it() -> None:
    with pytest.raises(ConfigError,
                       match=r"indexes\[by_email\]\.pk: column 'email' is excluded.*keep the column"):
        mapper(BY_EMAIL, exclude=("email",)).validate()


@pytest.mark.parametrize(("column_type", "override", "role", "why"), [
    ("time(6)", "default", "HASH", "does not sort like MySQL's TIME"),
    ("json", "default", "HASH", "document type"),
    ("set('a','b')", "default", "HASH", "string set"),
    ("enum('a','b')", "default", "RANGE", "member position"),
    ("enum('a','b')", "default", "HASH", "member position"),
    ("decimal(65,30)", "default", "RANGE", "wider than DynamoDB's 38 digits"),
    ("geometry", "default", "HASH", "geometry"),
    ("tinyint(1)", "bool", "HASH", "BOOL"),
    ("int(11)", "string", "RANGE", "sorts '10' before '9'"),
    ("varchar(10)", "number", "HASH", "'1.0' = '1'"),
    ("uuid", "default", "RANGE", "binary form"),
])
def test_columns_whose_dynamodb_form_cannot_key_a_gsi_or_sorts_differently_are_refused(
        column_type: str, override: str, role: str, why: str) -> None:
    typ, reason = index_key_type(parse_column_type(column_type), override, role)  # type: ignore[arg-type]
    assert typ is None and why in reason


@pytest.mark.parametrize(("column_type", "override", "expected"), [
    ("tinyint(4)", "default", "N"), ("bigint(20) unsigned", "default", "N"), ("year(4)", "default", "N"),
    ("bit(8)", "default", "N"), ("decimal(38,10)", "default", "N"), ("float", "default", "N"),
    ("double", "default", "N"), ("char(2)", "default", "S"), ("varchar(255)", "default", "S"),
    ("text", "default", "S"), ("date", "default", "S"), ("datetime(6)", "default", "S"),
    ("timestamp(3)", "default", "S"), ("datetime(3)", "epoch_ms", "N"), ("binary(16)", "default", "B"),
    ("varbinary(64)", "default", "B"), ("blob", "default", "B"), ("uuid", "default", "S"),
])
def test_columns_that_sort_alike_in_both_stores_key_a_gsi_with_their_mapped_type(
        column_type: str, override: str, expected: str) -> None:
    assert index_key_type(parse_column_type(column_type), override, "HASH") == (expected, "")  # type: ignore[arg-type]


def test_a_refused_column_type_is_a_config_error_saying_what_to_do() -> None:
    with pytest.raises(ConfigError, match=r"indexes\[by_dur\]\.pk: column 'dur' \(time\) cannot key a GSI: "
                                          r".*declare the access pattern on another column"):
        mapper({"name": "by_dur", "pk": "dur"}).validate()


_ALLOWED = [(name, typ) for name, typ in COLUMNS
            if index_key_type(parse_column_type(typ), "default", "RANGE")[0] is not None]


@given(data=st.data())
def test_every_value_of_an_allowed_column_encodes_to_the_gsi_key_type_or_is_a_documented_misfit(
        data: st.DataObject) -> None:
    _, typ = data.draw(st.sampled_from(_ALLOWED))
    value = data.draw(value_for(typ))
    ct = parse_column_type(typ)
    declared = index_key_type(ct, "default", "RANGE")[0]
    av = encode_value(ct, "default", value)
    assert av is not None
    tag = next(iter(av))
    # Only a DOUBLE beyond DynamoDB's number range leaves N (that row is dead-lettered, see to_item).
    assert tag == declared or (ct.kind == "double" and tag == "S")


# --------------------------------------------------------------------------- the GSI


def test_the_gsi_is_named_as_the_pattern_keyed_by_renamed_attributes_projecting_all() -> None:
    ix = mapper(BY_CREATED, rename={"created": "createdAt"}).index("by_created")
    assert ix.gsi.definition() == {
        "IndexName": "by_created",
        "KeySchema": [{"AttributeName": "country", "KeyType": "HASH"},
                      {"AttributeName": "createdAt", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "ALL"},
    }
    assert ix.gsi.attribute_definitions() == [{"AttributeName": "country", "AttributeType": "S"},
                                              {"AttributeName": "createdAt", "AttributeType": "S"}]


def test_an_undeclared_access_pattern_names_the_declared_ones() -> None:
    with pytest.raises(UnknownAccessPatternError, match=r"no access pattern 'by_name'.*\['by_email'\]"):
        mapper(BY_EMAIL).index("by_name")


# --------------------------------------------------------------------------- sparse items


def test_a_null_index_column_is_left_out_of_the_item_even_with_explicit_nulls() -> None:
    m = mapper(BY_CREATED)
    item = m.to_item(row(created=None))
    assert "created" not in item
    assert item["notes"] == {"NULL": True}  # other NULLs stay explicit


def test_a_null_index_column_reads_back_as_none() -> None:
    m = mapper(BY_EMAIL)
    r = row(email=None)
    assert m.to_row(m.to_item(r)) == r


def test_an_empty_index_key_value_is_an_unmappable_row_naming_the_gsi() -> None:
    with pytest.raises(UnmappableValueError, match=r"empty.*'by_email'") as exc:
        mapper(BY_EMAIL).to_item(row(email=""))
    assert exc.value.reason == "empty-index-key"


def test_an_index_sort_key_over_dynamodbs_1024_bytes_is_an_unmappable_row() -> None:
    m = mapper({"name": "by_country_notes", "pk": "country", "sk": "notes"})
    with pytest.raises(UnmappableValueError) as exc:
        m.to_item(row(notes="é" * 513))
    assert exc.value.reason == "index-key-too-large"
    m.to_item(row(notes="é" * 512))


def test_a_double_beyond_dynamodbs_number_range_cannot_key_a_gsi() -> None:
    with pytest.raises(UnmappableValueError) as exc:
        mapper({"name": "by_score", "pk": "score"}).to_item(row(score=1e300))
    assert exc.value.reason == "index-key-type"


def test_a_row_without_index_values_maps_as_before() -> None:
    assert mapper().to_item(row()) == mapper(BY_EMAIL, BY_CREATED).to_item(row())


# --------------------------------------------------------------------------- MySQL query


def test_mysql_query_of_a_string_key_compares_exact_bytes_and_orders_by_primary_key() -> None:
    sql, params = mysql_query(mapper(BY_EMAIL).index("by_email"), {"email": "a@b.c"})
    assert sql == (
        "SELECT `id`, `email`, `country`, `created`, `amount`, `score`, `ratio`, `hash`, `notes`, `secret`, "
        "`dur`, `doc` FROM `shop`.`users` WHERE `email` = %s AND BINARY CONVERT(`email` USING utf8mb4) = "
        "BINARY %s ORDER BY `id`")
    assert params == ("a@b.c", "a@b.c")


def test_mysql_query_with_a_sort_key_skips_nulls_and_orders_by_it_then_the_primary_key() -> None:
    where, order, params = mysql_condition(mapper(BY_CREATED).index("by_created"), {"country": "de"})
    assert where == ("`country` = %s AND BINARY CONVERT(`country` USING utf8mb4) = BINARY %s "
                     "AND `created` IS NOT NULL")
    assert (order, params) == ("`created`, `id`", ("de", "de"))


def test_mysql_query_with_a_sort_key_value_matches_it_as_mysql_text() -> None:
    ix = mapper(BY_CREATED).index("by_created")
    at = Temporal("datetime", "2024-01-31T10:00:00")
    where, _, params = mysql_condition(ix, {"country": "de", "created": at})
    assert "`created` = %s" in where and "BINARY CONVERT(`created`" not in where
    assert params == ("de", "de", "2024-01-31 10:00:00.000000")  # padded to the column's fsp


def test_mysql_query_orders_string_primary_keys_by_their_bytes_and_quotes_odd_names() -> None:
    m = TableMapper(TableMapping(source="shop.odd", indexes=[{"name": "by_n", "pk": "n`x"}]),
                    (("code", "varchar(8)"), ("n`x", "int(11)")), ("code",))
    sql, params = mysql_query(m.index("by_n"), {"n`x": 5})
    assert sql.endswith("WHERE `n``x` = %s ORDER BY BINARY CONVERT(`code` USING utf8mb4)")
    assert params == (5,)


def test_a_float_key_is_compared_as_the_stored_single_precision_value() -> None:
    m = mapper({"name": "by_ratio", "pk": "ratio"})
    _, _, params = mysql_condition(m.index("by_ratio"), {"ratio": 1.1})
    assert params == (1.100000023841858,)


@pytest.mark.parametrize(("values", "match"), [
    ({"email": "a@b.c", "id": 1}, r"'by_email' is queried by 'email'; got \['email', 'id'\]"),
    ({}, r"'by_email' is queried by 'email'"),
    ({"email": None}, "sparse"),
    ({"email": ""}, "empty"),
    ({"email": 5}, "not a string"),
])
def test_query_values_of_the_wrong_shape_are_refused_naming_the_pattern(
        values: dict[str, Any], match: str) -> None:
    ix = mapper(BY_EMAIL).index("by_email")
    with pytest.raises(KeyShapeError, match=match):
        mysql_query(ix, values)
    with pytest.raises(KeyShapeError, match=match):
        dynamodb_query_params("users", ix, values)


def test_a_sort_key_value_without_the_partition_key_is_refused() -> None:
    with pytest.raises(KeyShapeError, match=r"queried by 'country' \(and optionally 'created'\)"):
        mysql_query(mapper(BY_CREATED).index("by_created"),
                    {"created": Temporal("datetime", "2024-01-01T00:00:00")})


# --------------------------------------------------------------------------- DynamoDB query


def test_dynamodb_query_params_encode_values_through_the_mapping_and_skip_tombstones() -> None:
    ix = mapper(BY_CREATED, rename={"created": "createdAt"}).index("by_created")
    at = Temporal("datetime", "2024-01-31T10:00:00.5")
    params = dynamodb_query_params("t-users", ix, {"country": "de", "created": at},
                                   start_key={"id": {"N": "3"}})
    assert params == {
        "TableName": "t-users",
        "IndexName": "by_created",
        "KeyConditionExpression": "#pk = :pk AND #sk = :sk",
        "FilterExpression":
            "attribute_not_exists(#deleted) AND (attribute_not_exists(#table) OR #table = :table)",
        "ExpressionAttributeNames": {"#pk": "country", "#sk": "createdAt", "#deleted": DELETED_ATTR,
                                     "#table": "_table"},
        "ExpressionAttributeValues": {":pk": {"S": "de"}, ":sk": {"S": "2024-01-31T10:00:00.500000"},
                                      ":table": {"S": ix.mapper.table}},
        "ExclusiveStartKey": {"id": {"N": "3"}},
    }


def test_dynamodb_query_params_of_a_decimal_key_are_the_mappings_number_text() -> None:
    params = dynamodb_query_params("t", mapper({"name": "by_amount", "pk": "amount"}).index("by_amount"),
                                   {"amount": Decimal("1.50")})
    assert params["ExpressionAttributeValues"][":pk"] == {"N": "1.50"}
    assert "ExclusiveStartKey" not in params


def test_on_a_shared_table_the_query_keeps_only_its_own_tables_items() -> None:
    m = mapper(BY_EMAIL, key=KeySpec(pk="USER#{id}"))
    params = dynamodb_query_params("shared", m.index("by_email"), {"email": "a@b.c"})
    assert params["FilterExpression"] == (
        "attribute_not_exists(#deleted) AND (attribute_not_exists(#table) OR #table = :table)")
    assert params["ExpressionAttributeNames"]["#table"] == "_table"
    assert params["ExpressionAttributeValues"][":table"] == {"S": m.table}


@pytest.mark.parametrize(("template", "prefix"), [
    ("USER#{id}", "USER#"), ("{id}", ""), (None, ""), ("STATIC", "STATIC"), ("A{{x}}#{id}", "A{x}#")])
def test_template_prefix_is_the_literal_text_before_the_first_column(
        template: str | None, prefix: str) -> None:
    assert template_prefix(template) == prefix


# --------------------------------------------------------------------------- the shared order


def _mysql_binary_order(a: tuple[Any, ...], b: tuple[Any, ...]) -> int:
    """What ORDER BY BINARY CONVERT(sk USING utf8mb4), id does: bytes, then the integer key."""
    ka = (a[0].encode("utf-8"), a[1])
    kb = (b[0].encode("utf-8"), b[1])
    return (ka > kb) - (ka < kb)


_strings = st.text(st.sampled_from(["a", "A", "b", " ", "\t", "é", "É", "€", "😀", "\x00", "z"]), max_size=4)


@given(st.lists(st.tuples(_strings, st.integers(0, 5)), max_size=12, unique_by=lambda t: t[1]))
def test_sort_key_orders_strings_by_code_point_like_mysqls_utf8mb4_bytes(
        pairs: list[tuple[str, int]]) -> None:
    m = TableMapper(TableMapping(source="shop.t", indexes=[{"name": "by_g", "pk": "g", "sk": "s"}]),
                    (("id", "int(11)"), ("g", "int(11)"), ("s", "varchar(10)")), ("id",))
    rows = [{"id": i, "g": 1, "s": s} for s, i in pairs]
    ours = [(r["s"], r["id"]) for r in sorted(rows, key=m.index("by_g").sort_key)]
    assert ours == sorted(pairs, key=functools.cmp_to_key(_mysql_binary_order))


_datetimes6 = st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda d: Temporal("datetime", d.strftime("%Y-%m-%dT%H:%M:%S.%f")))


@given(st.lists(st.tuples(st.one_of(st.none(), _datetimes6), st.integers(-50, 50)), max_size=12,
                unique_by=lambda t: t[1]))
def test_sort_key_orders_datetimes_chronologically_then_by_primary_key(pairs: list[tuple[Any, int]]) -> None:
    ix = mapper(BY_CREATED).index("by_created")
    rows = [row(id=i, created=c) for c, i in pairs]
    ours = [(r["created"], r["id"]) for r in sorted(rows, key=ix.sort_key)]

    def chrono(p: tuple[Any, int]) -> tuple[Any, ...]:
        c = p[0]
        return (0, p[1]) if c is None else (1, datetime.fromisoformat(c.text), p[1])

    assert ours == sorted(pairs, key=chrono)


@given(st.lists(st.tuples(st.decimals(min_value=-10**9, max_value=10**9, places=2), st.integers(0, 50)),
                max_size=12, unique_by=lambda t: t[1]))
def test_sort_key_orders_decimals_numerically_with_equal_values_tied_by_primary_key(
        pairs: list[tuple[Decimal, int]]) -> None:
    ix = mapper({"name": "by_c_amount", "pk": "country", "sk": "amount"}).index("by_c_amount")
    rows = [row(id=i, amount=a) for a, i in pairs]
    assert [(r["amount"], r["id"]) for r in sorted(rows, key=ix.sort_key)] == sorted(pairs)

"""COLUMN_TYPE strings parse into what the mapping needs."""

from __future__ import annotations

import pytest

from replicator.errors import UnmappableSchemaError
from replicator.mapping.coltypes import parse_column_type


@pytest.mark.parametrize(("text", "kind", "unsigned"), [
    ("int(11)", "int", False), ("bigint(20) unsigned", "int", True), ("tinyint(1)", "int", False),
    ("BIGINT UNSIGNED ZEROFILL", "int", True), ("year(4)", "year", False), ("bit(64)", "bit", True),
    ("float", "float", False), ("double", "double", False), ("json", "json", False),
    ("varchar(255)", "text", False), ("text", "text", False), ("blob", "bytes", False),
    ("varbinary(255)", "bytes", False), ("geometry", "geometry", False), ("point", "geometry", False),
    ("date", "date", False),
])
def test_kind_and_sign_are_read_from_the_type(text: str, kind: str, unsigned: bool) -> None:
    ct = parse_column_type(text)
    assert (ct.kind, ct.unsigned) == (kind, unsigned)


def test_decimal_precision_and_scale_decide_number_or_text() -> None:
    narrow, wide = parse_column_type("decimal(38,10)"), parse_column_type("decimal(65,30)")
    assert (narrow.precision, narrow.scale, narrow.decimal_as_number) == (38, 10, True)
    assert (wide.precision, wide.scale, wide.decimal_as_number) == (65, 30, False)


def test_fractional_seconds_and_binary_width_are_read() -> None:
    assert parse_column_type("datetime(6)").fsp == 6
    assert parse_column_type("timestamp(3)").fsp == 3
    assert parse_column_type("time").fsp == 0
    assert parse_column_type("binary(16)").length == 16


def test_enum_and_set_members_keep_case_and_quotes() -> None:
    assert parse_column_type("enum('a','B c','it''s')").members == ("a", "B c", "it's")
    assert parse_column_type("set('x','Y')").kind == "set"


def test_an_unknown_type_is_an_unmappable_schema() -> None:
    with pytest.raises(UnmappableSchemaError, match="vector"):
        parse_column_type("vector(3)")

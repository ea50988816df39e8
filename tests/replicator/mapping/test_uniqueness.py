"""A key template must cover a unique index: two rows never share one item (issue 12)."""

from __future__ import annotations

import pytest

from replicator.errors import ConfigError
from replicator.mapping.uniqueness import check_key_is_unique, key_columns
from replicator.settings import KeySpec, TableMapping


def mapping(pk: str | None = None, sk: str | None = None) -> TableMapping:
    return TableMapping(source="shop.users", key=KeySpec(pk=pk, sk=sk) if pk else KeySpec())


def test_the_primary_key_itself_and_templates_over_it_are_unique() -> None:
    check_key_is_unique(mapping(), ("id",), ())
    check_key_is_unique(mapping("USER#{id}"), ("id",), ())
    check_key_is_unique(mapping("ORDER#{order_id}", "LINE#{line}"), ("order_id", "line"), ())


def test_a_template_over_a_unique_column_is_unique() -> None:
    check_key_is_unique(mapping("USER#{email}", "#META"), ("id",), (("email",),))
    check_key_is_unique(mapping("{tenant}", "USER#{email}"), ("id",), (("tenant", "email"),))


@pytest.mark.parametrize(("pk", "sk", "unique"), [
    ("USER#{email}", "#META", ()),                          # email not unique
    ("{tenant}", "#META", (("tenant", "email"),)),           # part of a unique index only
    ("COUNTRY#{country}", "{created_at}", (("email",),)),
])
def test_a_template_that_covers_no_unique_index_is_refused_naming_the_columns(
        pk: str, sk: str, unique: tuple[tuple[str, ...], ...]) -> None:
    refused = r"tables\[source=shop.users\].key: .*cover no unique index.*\(id\)"
    with pytest.raises(ConfigError, match=refused):
        check_key_is_unique(mapping(pk, sk), ("id",), unique)


def test_key_columns_are_the_templates_fields_or_the_primary_key() -> None:
    assert key_columns(mapping("{a}#{b}", "X#{c}"), ("id",)) == {"a", "b", "c"}
    assert key_columns(mapping(), ("id", "k")) == {"id", "k"}

"""Table and database names MySQL accepts only quoted: accepted by the settings, made legal where
Kafka and DynamoDB allow fewer characters, refused (naming the option) where MySQL refuses them."""

from __future__ import annotations

import re

import pytest

from replicator.errors import ConfigError
from replicator.settings import load_settings
from replicator.topics import table_topic

ACCEPTED = ["shop.café-orders", "my db.order items", "ü.№1", "d.a`b", "d.$x", "d." + "é" * 64]


@pytest.mark.parametrize("source", ACCEPTED)
def test_a_name_mysql_accepts_quoted_is_accepted_and_gets_legal_kafka_and_dynamodb_names(source: str) -> None:
    (table,) = load_settings(tables=[{"source": source}]).tables
    assert (table.database, table.table) == tuple(source.split("."))
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,249}", table_topic("cdc", source))
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,255}", table.target_name)


def test_plain_names_keep_their_topic_and_target() -> None:
    (table,) = load_settings(tables=[{"source": "shop.order_items-2"}]).tables
    assert table_topic("cdc", table.source) == "cdc.shop.order_items-2"
    assert table.target_name == "order_items-2"


def test_two_names_that_differ_only_in_refused_characters_get_different_topics_and_targets() -> None:
    a, b = load_settings(tables=[{"source": "d.é x"}, {"source": "d.è x"}]).tables
    assert table_topic("p", a.source) != table_topic("p", b.source)
    assert a.target_name != b.target_name


@pytest.mark.parametrize(("source", "why"), [
    ("d.a.b", "dot"), ("d.t ", "space"), ("d." + "x" * 65, "64"), ("d.a\0b", "U+0000"),
    ("nodot", "database.table"),
])
def test_a_name_mysql_refuses_is_refused_naming_the_option(source: str, why: str) -> None:
    with pytest.raises(ConfigError, match=rf"tables\.0\.source(.|\n)*{re.escape(why)}"):
        load_settings(tables=[{"source": source}])

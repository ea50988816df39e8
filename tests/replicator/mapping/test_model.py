"""The target model: shared tables whose keys could collide are refused; embeds are checked."""

from __future__ import annotations

from typing import Any

import pytest

from replicator.errors import ConfigError
from replicator.mapping.model import check_model, explain, keys_disjoint
from replicator.settings import Settings, TableMapping, load_settings


def _t(source: str, pk: str | None, sk: str | None = None, **kw: Any) -> dict[str, Any]:
    return {"source": source, "target": "shop", "key": {"pk": pk, "sk": sk}, **kw}


@pytest.mark.parametrize(("a", "b", "disjoint"), [
    (("USER#{id}", "#META"), ("USER#{user_id}", "ORDER#{id}"), True),
    (("USER#{id}", None), ("ORDER#{id}", None), True),
    (("USER#{id}", None), ("USER#{user_id}", "ORDER#{id}"), False),  # no sk on one: could collide
    (("{id}", "#META"), ("{user_id}", "#META"), False),
    (("USER#{id}", "{kind}"), ("USER#{user_id}", "ORDER#{id}"), False),  # sk starts with a value
    (("U{id}", "A"), ("USER#{id}", "B"), True),  # sk literals tell them apart
])
def test_keys_are_disjoint_only_when_a_literal_start_tells_them_apart(
        a: tuple[str, str | None], b: tuple[str, str | None], disjoint: bool) -> None:
    ma = TableMapping(**_t("s.a", *a))
    mb = TableMapping(**_t("s.b", *b))
    assert keys_disjoint(ma, mb) is disjoint
    assert keys_disjoint(mb, ma) is disjoint


def test_a_shared_table_whose_keys_could_collide_is_refused_naming_both_tables() -> None:
    settings = Settings(tables=[_t("s.users", "USER#{id}"), _t("s.admins", "USER#{id}")])
    with pytest.raises(ConfigError, match=r"s\.users and s\.admins share DynamoDB table 'shop'"):
        check_model(settings)


def test_the_workshop_model_passes_and_is_explained() -> None:
    settings = Settings(tables=[
        _t("s.users", "USER#{id}", "#META", collections=[{"name": "collection",
                                                           "members": {"s.orders": {"user_id": "id"}}}]),
        _t("s.orders", "USER#{user_id}", "ORDER#{id:010d}"),
        {"source": "s.order_items", "embed": {"parent": "s.orders", "as": "items",
                                               "on": {"order_id": "id", "user_id": "user_id"}}},
    ])
    check_model(settings)
    text = "\n".join(explain(settings))
    assert "DynamoDB table shop (shared" in text
    assert "embeds s.order_items as map 'items'" in text
    assert "collection 'collection'" in text


@pytest.mark.parametrize(("tables", "match"), [
    ([{"source": "s.i", "embed": {"parent": "s.o", "as": "items", "on": {"a": "b"}}}], "not a mapped table"),
    ([_t("s.o", "O#{id}"), {"source": "s.i", "target": "x", "embed": {"parent": "s.o", "as": "items",
                                                                      "on": {"a": "b"}}}], "cannot be set"),
    ([_t("s.o", "O#{id}"),
      {"source": "s.i", "embed": {"parent": "s.o", "as": "items", "on": {"a": "id"}}},
      {"source": "s.j", "embed": {"parent": "s.o", "as": "items", "on": {"a": "id"}}}], "another embed.as"),
    ([_t("s.o", "O#{id}"),
      {"source": "s.i", "embed": {"parent": "s.o", "as": "items", "on": {"a": "id"}}},
      {"source": "s.j", "embed": {"parent": "s.i", "as": "parts", "on": {"a": "id"}}}], "itself embedded"),
])
def test_bad_embeds_are_refused_at_load(tables: list[dict[str, Any]], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_settings(None, tables=tables)


def test_an_unquoted_yaml_on_key_is_read_as_embed_on(tmp_path: Any) -> None:
    """PyYAML reads `on:` as the boolean true; the issue's own syntax must still load."""
    cfg = tmp_path / "model.yaml"
    cfg.write_text("tables:\n  - {source: s.orders, key: {pk: 'O#{id}'}}\n"
                   "  - source: s.items\n    embed: {parent: s.orders, as: items, on: {order_id: id}}\n")
    settings = load_settings(cfg)
    assert settings.tables[1].embed is not None and settings.tables[1].embed.on == {"order_id": "id"}
    assert settings.tables[0].children_as == ("items",)

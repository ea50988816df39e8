"""Planning one batch: coalescing per item, dead letters for bad messages, offsets covered."""

from __future__ import annotations

from consumers.writer.batch import MapperCache, RawMessage, plan_batch
from replicator.settings import load_settings
from tests.consumers.conftest import make_event


def _settings():  # type: ignore[no-untyped-def]
    return load_settings(tables=[{"source": "shop.users"}], dynamodb={"table_prefix": "p-"})


def _msg(offset: int, value: bytes, partition: int = 0) -> RawMessage:
    return RawMessage("cdc.shop.users", partition, offset, b"k", value)


def test_events_of_one_item_coalesce_to_the_last_one() -> None:
    events = [make_event("c", "shop", 1, 10), make_event("u", "shop", 1, 20, n=5),
              make_event("u", "shop", 2, 30)]
    plan = plan_batch([_msg(i, e.to_json()) for i, e in enumerate(events)], MapperCache(_settings()), 0, 60)
    assert sorted((w.key["id"]["N"], w.version) for w in plan.writes) == [("1", 20), ("2", 30)]
    assert plan.coalesced == 1


def test_a_delete_after_an_insert_in_one_batch_leaves_the_tombstone() -> None:
    events = [make_event("c", "shop", 1, 10), make_event("d", "shop", 1, 20)]
    plan = plan_batch([_msg(i, e.to_json()) for i, e in enumerate(events)], MapperCache(_settings()), 0, 60)
    assert [(w.tombstone, w.version) for w in plan.writes] == [(True, 20)]


def test_corrupt_messages_become_dead_letters_with_their_reason() -> None:
    good = make_event("c", "shop", 1, 10).to_json()
    plan = plan_batch([_msg(0, b"not json"), _msg(1, b'{"v": 99}'), _msg(2, good)],
                      MapperCache(_settings()), 0, 60)
    assert [d.reason for d in plan.dead_letters] == ["not-json", "unknown-version"]
    assert len(plan.writes) == 1


def test_an_event_of_an_unmapped_table_is_a_dead_letter() -> None:
    plan = plan_batch([_msg(0, make_event("c", "other", 1, 10).to_json())], MapperCache(_settings()), 0, 60)
    assert [d.reason for d in plan.dead_letters] == ["unmapped-table"]


def test_offsets_cover_every_message_of_each_partition() -> None:
    e = make_event("c", "shop", 1, 10).to_json()
    plan = plan_batch([_msg(5, e, 0), _msg(9, b"x", 1), _msg(6, e, 0)], MapperCache(_settings()), 0, 60)
    assert plan.offsets == {("cdc.shop.users", 0): 7, ("cdc.shop.users", 1): 10}


def test_writes_target_the_prefixed_table() -> None:
    plan = plan_batch([_msg(0, make_event("c", "shop", 1, 10).to_json())], MapperCache(_settings()), 0, 60)
    assert plan.writes[0].table == "p-users"


def test_the_start_up_primary_key_order_decides_hash_and_range() -> None:
    settings = load_settings(tables=[{"source": "shop.lines"}])
    event = make_event("c", "shop", 1, 10)
    cols = (("order", "int(11)"), ("line", "int(11)"))
    event = type(event)(op="c", db="shop", table="lines", pk={"line": 2, "order": 1}, before=None,
                        after={"order": 1, "line": 2}, pos=event.pos, version=10, ts_ms=0, tx=event.tx,
                        schema="s2", columns=cols)
    mapper = MapperCache(settings, {"shop.lines": ("order", "line")}).mapper_for(event)
    assert [(a.name, a.role) for a in mapper.key_attributes] == [("order", "HASH"), ("line", "RANGE")]

"""Bad input gets a typed error naming what is wrong, and writes nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from replicator.client import connect
from replicator.control import PhaseState
from replicator.errors import (
    ControlStoreUnavailable,
    ItemTooLargeError,
    KeyShapeError,
    TransactionTooLargeError,
    UnknownAccessPatternError,
    UnknownTableError,
    UnmappableValueError,
)
from replicator.testing import MemoryControlStore
from tests.replicator.client.conftest import Shop

pytestmark = pytest.mark.integration


def test_an_unmapped_table_is_named_with_the_mapped_ones(shop: Shop) -> None:
    with pytest.raises(UnknownTableError, match=rf"'shop.nope' is not a mapped table.*{shop.users}"):
        shop.client.table("shop.nope")


@pytest.mark.parametrize(("key", "words"), [
    ({}, "missing \\['id'\\]"),
    ({"id": 1, "email": "x"}, "not key columns \\['email'\\]"),
    ({"uid": 1}, "missing \\['id'\\]"),
])
def test_a_key_with_missing_or_extra_columns_names_them(
        shop: Shop, key: dict[str, object], words: str) -> None:
    with pytest.raises(KeyShapeError, match=words):
        shop.client.table(shop.users).get(key)


def test_an_unknown_column_in_a_row_is_named(shop: Shop) -> None:
    shop.phase(2)
    with pytest.raises(KeyShapeError, match="no column\\(s\\) \\['colour'\\]"):
        shop.client.table(shop.users).insert({**shop.user(shop.next_ids(1)[0]), "colour": "red"})


def test_a_query_on_an_undeclared_access_pattern_lists_the_declared_ones(shop: Shop) -> None:
    with pytest.raises(UnknownAccessPatternError, match="by_email"):
        shop.client.table(shop.users).query("by_name", {"name": "x"})


def test_a_query_with_the_wrong_columns_names_the_patterns_columns(shop: Shop) -> None:
    with pytest.raises(KeyShapeError, match="'country'"):
        shop.client.table(shop.users).query("by_country", {"email": "x"})


@pytest.fixture()
def phase5(shop: Shop) -> Iterator[None]:
    shop.phase(5)
    yield
    shop.phase(2)


@pytest.mark.parametrize(("changes", "error", "words"), [
    ({"name": "x" * 81}, UnmappableValueError, "name"),
    ({"country": "FRA"}, UnmappableValueError, "country"),
    ({"balance": 10**11}, UnmappableValueError, "balance"),
    ({"created_at": dt.datetime(2024, 1, 1, 0, 0, 0, 1)}, None, ""),  # DATETIME(6) keeps microseconds
    ({"seen_at": dt.datetime(2024, 1, 1, 0, 0, 0, 1)}, UnmappableValueError, "fractional digits"),
    ({"prefs": "{broken"}, UnmappableValueError, "JSON"),
])
def test_a_phase_5_value_that_mysql_could_not_hold_is_refused_before_writing(
        shop: Shop, phase5: None, changes: dict[str, object], error: type[Exception] | None,
        words: str) -> None:
    users = shop.client.table(shop.users)
    (uid,) = shop.next_ids(1)
    users.insert(shop.user(uid))
    before = users.get({"id": uid})
    if error is None:
        assert users.update({"id": uid}, changes) == 1
        return
    with pytest.raises(error, match=words):
        users.update({"id": uid}, changes)
    assert users.get({"id": uid}) == before


def test_a_phase_5_item_over_400_kb_is_refused_naming_the_limit(shop: Shop, phase5: None) -> None:
    users = shop.client.table(shop.users)
    (uid,) = shop.next_ids(1)
    with pytest.raises(ItemTooLargeError, match="409600 byte limit"):
        users.insert(shop.user(uid, prefs='{"blob": "' + "x" * 420_000 + '"}'))
    assert users.get({"id": uid}) is None


def test_a_phase_5_transaction_over_100_items_names_dynamodbs_limit(shop: Shop, phase5: None) -> None:
    ids = shop.next_ids(101)
    with pytest.raises(TransactionTooLargeError, match="100"), shop.client.transaction() as tx:
        for uid in ids:
            tx.table(shop.users).insert(shop.user(uid))
    assert shop.client.table(shop.users).get({"id": ids[0]}) is None


def test_an_unreachable_control_store_at_start_up_stops_the_client_saying_what_to_do(shop: Shop) -> None:
    settings = shop.settings.model_copy(update={"control": shop.settings.control.model_copy(
        update={"redis_url": "redis://127.0.0.1:1/0"})})
    with pytest.raises(ControlStoreUnavailable, match=r"control\.redis_url"):
        connect(settings, name="no-store")


def test_a_control_store_lost_later_leaves_the_client_on_its_last_phase(shop: Shop) -> None:
    class Flaky(MemoryControlStore):
        down = False

        def get_phase(self) -> PhaseState:
            if self.down:
                from replicator.errors import ControlStoreUnavailable as Down

                raise Down("gone")
            return super().get_phase()

        def wait_for_change(self, known_epoch: int, timeout: float) -> PhaseState | None:
            if self.down:
                from replicator.errors import ControlStoreUnavailable as Down

                raise Down("gone")
            return super().wait_for_change(known_epoch, timeout)

    stores: list[Flaky] = []

    def factory(_settings: object) -> Flaky:
        store = Flaky() if not stores else stores[0]
        stores.append(store)
        return store

    client = connect(shop.settings, name="flaky", store_factory=factory)  # type: ignore[arg-type]
    try:
        assert client.phase.phase == 1
        stores[0].down = True
        assert client.table(shop.users).get({"id": -1}) is None  # still serves, on its last phase
        assert client.phase.phase == 1
    finally:
        client.close()

"""Which changes of a page MySQL applies, by each row's last version (pure)."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from consumers.reverse.model import Change
from consumers.reverse.order import newer, row_digest

V = 1 << 53 | 1_000_000


def change(op: str, version: int, pk: int = 7, source: str = "shop.orders") -> Change:
    return Change(source, op, (pk,), f"id={pk}", (pk,), version, "1", 0.0)  # type: ignore[arg-type]


def test_at_one_version_the_upsert_wins_whatever_the_order() -> None:
    up, down = change("upsert", V), change("delete", V)
    assert newer([down, up], {}) == ([True, True], {row_digest("shop.orders", (7,)): (V, 1)})
    assert newer([up, down], {})[0] == [True, False]


def test_a_change_no_newer_than_the_stored_version_is_superseded() -> None:
    digest = row_digest("shop.orders", (7,))
    assert newer([change("upsert", V)], {digest: (V, 1)})[0] == [False]  # a replay
    assert newer([change("delete", V)], {digest: (V, 1)})[0] == [False]
    assert newer([change("upsert", V - 1)], {digest: (V, 0)})[0] == [False]
    assert newer([change("upsert", V)], {digest: (V, 0)})[0] == [True]
    assert newer([change("delete", V + 1)], {digest: (V, 1)})[0] == [True]


def test_any_arrival_order_ends_in_the_newest_state() -> None:
    history = [change("upsert", V + i // 2) if i % 2 else change("delete", V + i // 2) for i in range(8)]
    expected = max((c.version, c.op == "upsert") for c in history)
    rng = random.Random(5)
    for _ in range(200):
        shuffled = history[:]
        rng.shuffle(shuffled)
        stored: dict[bytes, tuple[int, int]] = {}
        state = None
        for page in (shuffled[:3], shuffled[3:5], shuffled[5:]):  # pages, each one transaction
            applies, final = newer(page, stored)
            for c, a in zip(page, applies, strict=True):
                if a:
                    state = (c.version, c.op == "upsert")
            stored.update(final)
        assert state == expected


def test_a_rows_identity_is_its_table_and_primary_key_values() -> None:
    assert row_digest("a.t", (1, "x")) == row_digest("a.t", (1, "x"))
    assert row_digest("a.t", (1, "x")) != row_digest("a.u", (1, "x"))
    assert row_digest("a.t", (1,)) != row_digest("a.t", ("1",))
    assert row_digest("a.t", (Decimal("1.50"),)) == row_digest("a.t", (Decimal("1.5"),))
    assert row_digest("a.t", (b"\x00",)) != row_digest("a.t", ("00",))
    assert row_digest("a.t", (dt.date(2026, 1, 2),)) == row_digest("a.t", (dt.date(2026, 1, 2),))

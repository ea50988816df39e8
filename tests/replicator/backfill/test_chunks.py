"""Keyset pagination SQL over single and composite primary keys."""

from __future__ import annotations

import itertools

from replicator.backfill.chunks import after_key_params, after_key_predicate, chunk_query


def test_single_column_key_is_a_plain_range() -> None:
    assert after_key_predicate(["id"]) == "(`id` > %s)"
    assert after_key_params([7]) == [7]


def test_composite_key_expands_to_lexicographic_order() -> None:
    assert after_key_predicate(["a", "b"]) == "(`a` > %s) OR (`a` = %s AND `b` > %s)"
    assert after_key_params([1, "x"]) == [1, 1, "x"]


def test_predicate_selects_exactly_the_keys_after_the_cursor() -> None:
    # Evaluate the predicate's logic over every 3-column key in a small grid.
    keys = list(itertools.product(range(3), repeat=3))
    for cursor in keys:
        expected = {k for k in keys if k > cursor}
        got = {k for k in keys
               if any(all(k[j] == cursor[j] for j in range(i)) and k[i] > cursor[i] for i in range(3))}
        assert got == expected
    assert after_key_predicate(["a", "b", "c"]).count("%s") == len(after_key_params([0, 0, 0]))


def test_identifiers_are_quoted_and_backticks_escaped() -> None:
    sql = chunk_query("d`b", "t", ["`x`"], ["i`d"], after=True, limit=10)
    assert sql == "SELECT `x` FROM `d``b`.`t` WHERE (`i``d` > %s) ORDER BY `i``d` LIMIT 10"


def test_first_chunk_has_no_cursor_predicate() -> None:
    assert "WHERE" not in chunk_query("d", "t", ["`a`"], ["a"], after=False, limit=5)

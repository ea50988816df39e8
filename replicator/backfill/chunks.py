"""Keyset pagination over a primary key, single or composite (pure SQL text).

``(a, b) > (x, y)`` is written out as ``a > x OR (a = x AND b > y)``: every MySQL and
MariaDB version turns that into an index range scan, which row-constructor comparisons
do not always get.
"""

from __future__ import annotations

from collections.abc import Sequence

from replicator.mapping.cells import quote_ident


def after_key_predicate(pk: Sequence[str]) -> str:
    """``WHERE`` text selecting rows whose key sorts after a placeholder tuple (``%s`` params)."""
    clauses = []
    for i, col in enumerate(pk):
        eqs = [f"{quote_ident(c)} = %s" for c in pk[:i]]
        clauses.append("(" + " AND ".join([*eqs, f"{quote_ident(col)} > %s"]) + ")")
    return " OR ".join(clauses)


def after_key_params(cursor: Sequence[object]) -> list[object]:
    """The parameters for :func:`after_key_predicate`, in placeholder order."""
    params: list[object] = []
    for i in range(len(cursor)):
        params.extend(cursor[: i + 1])
    return params


def chunk_query(db: str, table: str, select_list: Sequence[str], pk: Sequence[str], *,
                after: bool, limit: int) -> str:
    """One chunk: the next ``limit`` rows in key order, after the cursor when ``after``."""
    where = f" WHERE {after_key_predicate(pk)}" if after else ""
    order = ", ".join(quote_ident(c) for c in pk)
    # Identifiers are quoted by quote_ident and values are %s parameters: no injection path.
    return (f"SELECT {', '.join(select_list)} FROM {quote_ident(db)}.{quote_ident(table)}"  # noqa: S608
            f"{where} ORDER BY {order} LIMIT {int(limit)}")


def keys_query(db: str, table: str, select_list: Sequence[str], pk: Sequence[str], count: int) -> str:
    """The rows of ``count`` primary keys (``%s`` params: each key's values in ``pk`` order)."""
    if len(pk) == 1:
        where = f"{quote_ident(pk[0])} IN ({', '.join(['%s'] * count)})"
    else:
        one = "(" + " AND ".join(f"{quote_ident(c)} = %s" for c in pk) + ")"
        where = " OR ".join([one] * count)
    # Identifiers are quoted by quote_ident and values are %s parameters: no injection path.
    return (f"SELECT {', '.join(select_list)} FROM {quote_ident(db)}.{quote_ident(table)}"  # noqa: S608
            f" WHERE {where}")

"""Property on the real stack: an access pattern gives the same rows, in the same order, from both stores.

Random rows go into a MariaDB table whose string columns have case-insensitive, PAD SPACE
collations; the rows MariaDB then holds go to DynamoDB Local through ``TableMapper.to_item`` and
the writer's conditional upsert (some are deleted again: a MySQL DELETE and a tombstone). For
every declared pattern and many key values, ``mysql_query`` and the paginated
``dynamodb_query_params`` + ``sort_key`` must return equal lists.
"""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replicator.catalog import read_table_shape
from replicator.events import Temporal
from replicator.mapping import ORIGIN_CDC, IndexMapping, TableMapper, dynamodb_query_params, mysql_query
from replicator.mapping.conditional import tombstone, upsert
from replicator.settings import TableMapping

pytestmark = pytest.mark.integration

DDL = """CREATE TABLE items (
    tag VARCHAR(10) COLLATE utf8mb4_general_ci NOT NULL,
    id INT NOT NULL,
    email VARCHAR(40) COLLATE utf8mb4_general_ci NULL,
    country VARCHAR(8) COLLATE utf8mb4_unicode_ci NULL,
    created DATETIME(6) NULL,
    amount DECIMAL(12,2) NULL,
    n INT NULL,
    PRIMARY KEY (tag, id)
)"""
INDEXES = [
    {"name": "by_email", "pk": "email"},
    {"name": "by_created", "pk": "country", "sk": "created"},
    {"name": "by_amount", "pk": "country", "sk": "amount"},
    {"name": "by_n_email", "pk": "n", "sk": "email"},
    {"name": "by_tag", "pk": "tag"},  # the table's own partition key: tombstones are in this GSI
]

# Small pools, so that values collide under the collations (case, accents, trailing spaces)
# and sort keys tie; plus freely drawn values for variety.
TAGS = ["a", "A", "a ", "b", "é", "É", " "]
EMAILS = ["a@x", "A@x", "a@x ", "a@x  ", "ä@x", "Ä@x", "a@X", "😀@x", "a\t@x", "a@x\u00a0"]
COUNTRIES = ["de", "DE", "de ", "dé", "Dé", "fr"]
CREATED = [datetime(2024, 1, 1), datetime(2024, 1, 1, 0, 0, 0, 1), datetime(1999, 12, 31, 23, 59, 59, 999999)]
AMOUNTS = [Decimal("1.50"), Decimal("-0.01"), Decimal("0.00"), Decimal("9.99")]


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


_created = st.one_of(st.sampled_from(CREATED), st.datetimes(min_value=datetime(1000, 1, 1),
                                                            max_value=datetime(9999, 12, 31)))
_amount = st.one_of(st.sampled_from(AMOUNTS),
                    st.integers(-(10**12) + 1, 10**12 - 1).map(lambda n: Decimal(n).scaleb(-2)))
_row = st.fixed_dictionaries({
    "tag": st.sampled_from(TAGS), "email": _maybe(st.sampled_from(EMAILS)),
    "country": _maybe(st.sampled_from(COUNTRIES)), "created": _maybe(_created), "amount": _maybe(_amount),
    "n": _maybe(st.integers(-2, 2)), "deleted": st.integers(0, 5).map(lambda d: d == 0),
})


def from_mysql(columns: list[str], cells: tuple[Any, ...]) -> dict[str, Any]:
    row = dict(zip(columns, cells, strict=True))
    if row["created"] is not None:
        row["created"] = Temporal("datetime", row["created"].strftime("%Y-%m-%dT%H:%M:%S.%f"))
    return row


@pytest.fixture()
def items(mysql_admin: Any, mysql_db: str, dynamodb: Any, unique: str) -> tuple[TableMapper, str]:
    with mysql_admin.cursor() as cur:
        cur.execute(DDL)
        shape = read_table_shape(cur, mysql_db, "items")
    assert shape is not None
    mapper = TableMapper(TableMapping(source=f"{mysql_db}.items", indexes=INDEXES), shape.columns, shape.pk)
    mapper.validate()
    name = f"{unique}-items"
    types = {k.name: k.type for k in mapper.key_attributes}
    types.update({k.attribute: k.type for ix in mapper.indexes for k in ix.key})
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": k.name, "KeyType": k.role} for k in mapper.key_attributes],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t in types.items()],
        GlobalSecondaryIndexes=[ix.gsi.definition() for ix in mapper.indexes])
    return mapper, name


def _reset(mysql: Any, dynamodb: Any, table: str) -> None:
    with mysql.cursor() as cur:
        cur.execute("TRUNCATE TABLE items")
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True,
                                                        ProjectionExpression="tag, id"):
        for item in page["Items"]:
            dynamodb.delete_item(TableName=table, Key=item)


def _from_dynamodb(dynamodb: Any, mapper: TableMapper, table: str, ix: IndexMapping,
                   values: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    start: dict[str, Any] | None = None
    for _ in range(1000):  # a bound, far above the pages these tables produce
        params = dynamodb_query_params(table, ix, values, start_key=start)
        page = dynamodb.query(**params, Limit=2)
        rows += [mapper.to_row(item) for item in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            return sorted(rows, key=ix.sort_key)
    raise AssertionError("pagination did not end")


def _queries(ix: IndexMapping, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pattern's partition values (present or not), and the (pk, sk) pairs the rows hold."""
    pools: dict[str, list[Any]] = {"email": EMAILS, "country": COUNTRIES, "n": list(range(-2, 3)),
                                   "tag": TAGS}
    pool = pools[ix.pk.column]
    queries: list[dict[str, Any]] = [{ix.pk.column: v} for v in pool]
    if ix.sk is not None:
        queries += [{ix.pk.column: r[ix.pk.column], ix.sk.column: r[ix.sk.column]} for r in rows[:3]
                    if r[ix.pk.column] is not None and r[ix.sk.column] is not None]
    return queries


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=st.lists(_row, min_size=1, max_size=14))
def test_every_access_pattern_answers_alike_from_mariadb_and_dynamodb(
        mysql_admin: Any, dynamodb: Any, items: tuple[TableMapper, str], drawn: list[dict[str, Any]]) -> None:
    mapper, table = items
    _reset(mysql_admin, dynamodb, table)
    columns = list(mapper.attributes)
    with mysql_admin.cursor() as cur:
        cur.executemany("INSERT INTO items (tag, id, email, country, created, amount, n) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                        [(r["tag"], i, r["email"], r["country"], r["created"], r["amount"], r["n"])
                         for i, r in enumerate(drawn)])
        cur.execute(f"SELECT {', '.join(columns)} FROM items")
        stored = [from_mysql(columns, cells) for cells in cur.fetchall()]
        for row in stored:
            dynamodb.put_item(**upsert(mapper, table, row, 1, ORIGIN_CDC).put_item_params())
        for row in stored:
            if drawn[row["id"]]["deleted"]:
                cur.execute("DELETE FROM items WHERE tag = %s AND BINARY tag = %s AND id = %s",
                            (row["tag"], row["tag"], row["id"]))
                dynamodb.put_item(**tombstone(mapper, table, row, 2, ORIGIN_CDC,
                                              int(time.time()) + 60).put_item_params())
        for ix in mapper.indexes:
            for values in _queries(ix, stored):
                sql, params = mysql_query(ix, values)
                cur.execute(sql, params)
                from_mariadb = [from_mysql(columns, cells) for cells in cur.fetchall()]
                assert _from_dynamodb(dynamodb, mapper, table, ix, values) == from_mariadb, (ix.name, values)

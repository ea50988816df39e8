"""The row digest MySQL computes in SQL equals the one Python computes from the row and from the
DynamoDB item it maps to, for every column kind the SQL side handles (real MariaDB)."""

from __future__ import annotations

from typing import Any

import pytest

from replicator.catalog import TableShape
from replicator.mapping import TableMapper
from replicator.settings import load_settings
from validators.checksum import Fold, digest_sql, item_digester, row_digest, sql_exact
from validators.ranges import RangeReader

pytestmark = pytest.mark.integration

DDL = """CREATE TABLE kinds (
  id BIGINT UNSIGNED PRIMARY KEY, i TINYINT, u INT UNSIGNED, y YEAR, bt BIT(7),
  d DECIMAL(12,3), wide DECIMAL(50,10), s VARCHAR(40), t TEXT, e ENUM('x','y','z'), st SET('b','a','c'),
  bn BINARY(4), vb VARBINARY(8), bl BLOB, dt DATE, dtt DATETIME(6), ts TIMESTAMP(3) NULL, tm TIME(2)
) CHARACTER SET utf8mb4"""

ROWS = [
    (1, 0, 0, 2024, 0, "0.000", "0", "", "", "x", "", b"\x00", b"", b"", "2024-01-31",
     "2024-01-31 10:00:00.000001", "2024-01-31 10:00:00.123", "-838:59:59.00"),
    (2, -128, 4294967295, 1901, 127, "-123456789.125", "1234567890123456789012345678901234567890.5",
     "héllo wörld ✓ 😀", "line\nbreak, comma: colon", "z", "a,b", b"\xff\x00ab", b"\x00\x01",
     b"\x00" * 300, "1000-01-01", "9999-12-31 23:59:59.999999", "2038-01-19 03:14:07.999", "838:59:59.99"),
    (3, None, None, None, None, None, None, None, None, None, None, None, None, None, None, None, None, None),
    (4, 1, 7, 2000, 1, "1.5", "-0.0000000001", "N", "3:abc", "y", "c,a,b", b"N", b"2:xy", b"\n", "2000-02-29",
     "2000-02-29 00:00:00", "1970-01-01 00:00:01", "00:00:00"),
]


@pytest.fixture()
def kinds(mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str]) -> tuple[TableShape, TableMapper]:
    with mysql_admin.cursor() as cur:
        cur.execute("SET time_zone = '+00:00'")
        cur.execute(DDL)
        cur.executemany(f"INSERT INTO kinds VALUES ({', '.join(['%s'] * 18)})", ROWS)
    settings = load_settings(tables=[{"source": f"{mysql_db}.kinds"}])
    from replicator.backfill.source import SnapshotSource

    with SnapshotSource(settings.mysql) as src:
        shape = src.table_shape(mysql_db, "kinds")
    return shape, TableMapper(settings.tables[0], shape.columns, shape.pk)


def test_sql_and_python_digests_agree_for_every_exact_kind_and_through_dynamodb(
        kinds: tuple[TableShape, TableMapper], isolated_env: dict[str, str]) -> None:
    shape, mapper = kinds
    columns = [(n, mapper.types[n]) for n in mapper.attributes]
    assert sql_exact(columns)
    reader = RangeReader(load_settings().mysql)
    reader.start()
    try:
        rows = reader.rows(shape, None, None)
        for row in rows:
            key = (row["id"],)
            lo = reader.key_at(shape, None, None, int(row["id"]) - 2) if row["id"] > 1 else None
            server = reader.fold(shape, digest_sql(columns), lo, key)
            assert server.count == 1
            projected = {c: row.get(c) for c in mapper.attributes}
            assert server.xor == row_digest(projected, columns), f"row {row['id']}"
            through_dynamodb = mapper.to_row(mapper.to_item(row))
            assert row_digest(through_dynamodb, columns) == server.xor, f"row {row['id']} via DynamoDB"
            assert item_digester(mapper, columns)(mapper.to_item(row)) == server.xor, f"row {row['id']} item"
        whole = reader.fold(shape, digest_sql(columns), None, None)
        expected = Fold()
        for row in rows:
            expected.add(row_digest({c: row.get(c) for c in mapper.attributes}, columns))
        assert whole == expected
    finally:
        reader.close()

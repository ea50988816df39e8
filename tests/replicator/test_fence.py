"""The MySQL fence row (docs/design.md): its states, its parsing, the MySQL generation, its SQL,
and the two cursor helpers (against a recording fake cursor, and once against the real server)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from replicator.events import MAX_GENERATION
from replicator.fence import (
    INITIAL_FENCE,
    FenceState,
    create_fence_sql,
    ensure_fence_table,
    mysql_generation,
    parse_fence,
    quoted_table,
    read_fence,
    select_fence_sql,
    update_fence_sql,
)

# --------------------------------------------------------------------------- states


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (FenceState("mysql", 0), 0),  # before any switch
        (FenceState("dynamodb", 1), 0),  # 4 -> 5: MySQL's changes (echoes) keep the last MySQL generation
        (FenceState("mysql", 2), 2),  # 5 -> 4: MySQL takes writes again, above every phase-5 write
        (FenceState("mysql", 4), 4),  # an aborted 4 -> 5: back to MySQL with a generation never used
        (FenceState("dynamodb", 7), 6),
    ],
)
def test_mysql_generation_is_the_last_generation_in_which_mysql_took_writes(
    state: FenceState, expected: int
) -> None:
    assert mysql_generation(state) == expected


def test_the_state_before_any_switch_is_mysql_at_generation_zero() -> None:
    assert FenceState("mysql", 0) == INITIAL_FENCE
    assert mysql_generation(INITIAL_FENCE) == 0


@pytest.mark.parametrize(
    "row",
    [
        {"id": 1, "writes_to": "mysql", "generation": 2, "updated_at": None},  # a binlog image
        ("mysql", 2),  # a tuple cursor's row
        (b"mysql", 2),  # an ENUM as bytes
    ],
)
def test_a_fence_row_parses_from_an_image_or_a_tuple(row: Any) -> None:
    assert parse_fence(row) == FenceState("mysql", 2)


@pytest.mark.parametrize(
    "row",
    [
        {"writes_to": "mysql"},  # no generation
        ("elsewhere", 1),  # not a write target
        ("", 1),  # what an out-of-range ENUM index decodes to
        ("mysql", "2"),  # not an integer
        ("mysql", True),
        ("mysql", -1),
        ("mysql", MAX_GENERATION + 1),  # would not fit the version's 11 bits
        ("dynamodb", 0),  # a switch to DynamoDB always bumps the generation
        (),
    ],
)
def test_a_row_that_is_not_a_fence_state_is_refused(row: Any) -> None:
    with pytest.raises(ValueError):
        parse_fence(row)


# --------------------------------------------------------------------------- SQL text


def test_the_fence_table_is_one_row_with_the_documented_columns() -> None:
    create_db, create_table, insert_row = create_fence_sql("replicator.fence")
    assert create_db == "CREATE DATABASE IF NOT EXISTS `replicator`"
    assert create_table.startswith("CREATE TABLE IF NOT EXISTS `replicator`.`fence` (")
    for column in ("id TINYINT UNSIGNED NOT NULL PRIMARY KEY",
                   "writes_to ENUM('mysql','dynamodb') NOT NULL DEFAULT 'mysql'",
                   "generation INT UNSIGNED NOT NULL DEFAULT 0", "updated_at TIMESTAMP(6)"):
        assert column in create_table
    assert insert_row == "INSERT IGNORE INTO `replicator`.`fence` (id) VALUES (1)"


def test_reads_and_updates_address_row_one() -> None:
    assert select_fence_sql("a.b") == "SELECT writes_to, generation FROM `a`.`b` WHERE id = 1"
    assert select_fence_sql("a.b", lock="FOR SHARE").endswith("WHERE id = 1 FOR SHARE")
    assert update_fence_sql("a.b") == "UPDATE `a`.`b` SET writes_to = %s, generation = %s WHERE id = 1"


@pytest.mark.parametrize("name", ["fence", "a.b.c", ".b", "a."])
def test_a_fence_table_name_must_be_database_dot_table(name: str) -> None:
    with pytest.raises(ValueError):
        quoted_table(name)


# --------------------------------------------------------------------------- cursor helpers


class FakeCursor:
    """Answers the existence probe and the row read from ``tables``: {"db.table": row or None}."""

    def __init__(self, tables: dict[str, Sequence[Any] | None]) -> None:
        self.tables = tables
        self.executed: list[tuple[str, Sequence[Any]]] = []
        self._result: list[Sequence[Any]] = []
        self.closed = False

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.executed.append((sql, params))
        if "information_schema" in sql:
            self._result = [(int(f"{params[0]}.{params[1]}" in self.tables),)]
        elif sql.startswith("SELECT writes_to"):
            row = next(v for k, v in self.tables.items() if quoted_table(k) in sql)
            self._result = [row] if row is not None else []
        else:
            self._result = []

    def fetchone(self) -> Sequence[Any] | None:
        return self._result[0] if self._result else None

    def close(self) -> None:
        self.closed = True


class FakeConnection:
    def __init__(self, cursor: FakeCursor) -> None:
        self.cur = cursor
        self.commits = 0

    def cursor(self) -> FakeCursor:
        return self.cur

    def commit(self) -> None:
        self.commits += 1


def test_a_missing_fence_table_reads_as_the_state_before_any_switch() -> None:
    cur = FakeCursor({})
    assert read_fence(cur, "replicator.fence") == INITIAL_FENCE
    assert len(cur.executed) == 1  # the table itself is never selected from


def test_a_fence_table_without_its_row_reads_as_the_state_before_any_switch() -> None:
    assert read_fence(FakeCursor({"replicator.fence": None}), "replicator.fence") == INITIAL_FENCE


def test_the_fence_row_is_read_through_the_callers_cursor() -> None:
    cur = FakeCursor({"replicator.fence": ("dynamodb", 3)})
    assert read_fence(cur, "replicator.fence") == FenceState("dynamodb", 3)
    assert cur.executed[0][1] == ("replicator", "fence")


def test_ensure_creates_then_reads_and_commits() -> None:
    cur = FakeCursor({"x.fence": ("mysql", 0)})
    conn = FakeConnection(cur)
    assert ensure_fence_table(conn, "x.fence") == INITIAL_FENCE
    assert [sql for sql, _ in cur.executed[:3]] == create_fence_sql("x.fence")
    assert conn.commits >= 1 and cur.closed


@pytest.mark.integration
def test_ensure_fence_table_on_the_server_is_idempotent_and_keeps_the_row(
    mysql_admin: Any, mysql_db: str
) -> None:
    table = f"{mysql_db}.fence"
    assert ensure_fence_table(mysql_admin, table) == INITIAL_FENCE
    with mysql_admin.cursor() as cur:
        cur.execute(update_fence_sql(table), ("dynamodb", 5))
    assert ensure_fence_table(mysql_admin, table) == FenceState("dynamodb", 5)
    with mysql_admin.cursor() as cur:
        assert read_fence(cur, table) == FenceState("dynamodb", 5)
        assert read_fence(cur, f"{mysql_db}.absent") == INITIAL_FENCE
        cur.execute(f"SELECT updated_at FROM `{mysql_db}`.fence")
        assert cur.fetchone()[0] is not None

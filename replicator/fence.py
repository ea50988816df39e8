"""The MySQL fence row (docs/design.md, "Versions across direction changes"): where the
application's writes go and the generation of every pipeline version.

One row, ``id = 1``, in ``cutover.fence_table`` (``database.table``)::

    writes_to   ENUM('mysql','dynamodb') NOT NULL DEFAULT 'mysql'
    generation  INT UNSIGNED NOT NULL DEFAULT 0
    updated_at  TIMESTAMP(6)

It lives in MySQL so that its changes travel through the binlog in order with the data: the
reader tags every later event with :func:`mysql_generation` of the last fence row it decoded,
the backfill reads the row inside each chunk's consistent snapshot. A missing table (or row)
is :data:`INITIAL_FENCE`: generation 0, MySQL takes the writes (the state before any switch).

Pure text and parsing, plus two helpers over a DB-API cursor or connection
(:func:`read_fence`, :func:`ensure_fence_table`); nothing here imports a vendor client, so
the callers own the connection and translate its errors (:func:`replicator.adapters.mysql.mysql_errors`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from replicator.events import MAX_GENERATION

__all__ = [
    "FENCE_COLUMNS", "FENCE_ROW_ID", "INITIAL_FENCE", "FenceState", "WritesTo", "create_fence_sql",
    "ensure_fence_table", "fence_exists_sql", "mysql_generation", "parse_fence", "quoted_table",
    "read_fence", "select_fence_sql", "update_fence_sql",
]

WritesTo = Literal["mysql", "dynamodb"]
FENCE_ROW_ID = 1
FENCE_COLUMNS = ("writes_to", "generation")  # what a read selects, in this order


@dataclass(frozen=True, slots=True)
class FenceState:
    """One state of the fence row. ``generation`` is bumped at every switch of the write target."""

    writes_to: WritesTo
    generation: int

    def __post_init__(self) -> None:
        if self.writes_to not in ("mysql", "dynamodb"):
            raise ValueError(f"fence writes_to {self.writes_to!r} is neither 'mysql' nor 'dynamodb'")
        if not 0 <= self.generation <= MAX_GENERATION:
            raise ValueError(f"fence generation {self.generation} out of range (0..{MAX_GENERATION})")
        if self.writes_to == "dynamodb" and self.generation == 0:
            raise ValueError("fence writes_to 'dynamodb' at generation 0: every switch bumps the generation")


INITIAL_FENCE = FenceState("mysql", 0)


def mysql_generation(state: FenceState) -> int:
    """The generation of the last state in which MySQL took writes: what MySQL changes carry."""
    return state.generation if state.writes_to == "mysql" else state.generation - 1


def parse_fence(row: Mapping[str, Any] | Sequence[Any]) -> FenceState:
    """A fence row as a mapping (a binlog image, a dict cursor) or a ``(writes_to, generation)``
    tuple (:func:`select_fence_sql`). ValueError when it is not a fence state."""
    try:
        if isinstance(row, Mapping):
            writes_to, generation = row["writes_to"], row["generation"]
        else:
            writes_to, generation = row[0], row[1]
    except (KeyError, IndexError) as exc:
        raise ValueError(f"not a fence row (needs {', '.join(FENCE_COLUMNS)}): {row!r}") from exc
    if isinstance(writes_to, bytes | bytearray):
        writes_to = bytes(writes_to).decode("ascii", "replace")
    if isinstance(generation, bool) or not isinstance(generation, int):
        raise ValueError(f"fence generation {generation!r} is not an integer")
    return FenceState(str(writes_to), generation)  # type: ignore[arg-type]  # checked by __post_init__


# --------------------------------------------------------------------------- SQL text


def quoted_table(table: str) -> str:
    """```db`.`table``` of a ``database.table`` name (as ``cutover.fence_table`` validates it)."""
    db, sep, name = table.partition(".")
    if not sep or not db or not name or "." in name:
        raise ValueError(f"fence table must be 'database.table', got {table!r}")
    return ".".join("`" + part.replace("`", "``") + "`" for part in (db, name))


def create_fence_sql(table: str) -> list[str]:
    """Statements that create the database, the table and its row when missing (idempotent)."""
    db = quoted_table(table).split(".")[0]
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"CREATE TABLE IF NOT EXISTS {quoted_table(table)} ("
        "id TINYINT UNSIGNED NOT NULL PRIMARY KEY, "
        "writes_to ENUM('mysql','dynamodb') NOT NULL DEFAULT 'mysql', "
        "generation INT UNSIGNED NOT NULL DEFAULT 0, "
        "updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)"
        ") ENGINE=InnoDB",
        f"INSERT IGNORE INTO {quoted_table(table)} (id) VALUES ({FENCE_ROW_ID})",  # noqa: S608 - quoted name
    ]


def fence_exists_sql() -> str:
    """Whether the table exists: params ``(database, table)``, one row with a count."""
    return "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s"


def select_fence_sql(table: str, *, lock: str = "") -> str:
    """The row as ``(writes_to, generation)``; ``lock``: "" or a locking clause (``FOR SHARE``...)."""
    suffix = f" {lock}" if lock else ""
    return (f"SELECT {', '.join(FENCE_COLUMNS)} FROM {quoted_table(table)} "  # noqa: S608 - quoted name
            f"WHERE id = {FENCE_ROW_ID}{suffix}")


def update_fence_sql(table: str) -> str:
    """Set the row: params ``(writes_to, generation)``."""
    return (f"UPDATE {quoted_table(table)} SET writes_to = %s, generation = %s "  # noqa: S608 - quoted name
            f"WHERE id = {FENCE_ROW_ID}")


# --------------------------------------------------------------------------- over a DB-API cursor


def read_fence(cursor: Any, table: str) -> FenceState:
    """The fence row through ``cursor`` (in the caller's transaction, e.g. a consistent snapshot).

    A missing table or row is :data:`INITIAL_FENCE`. The table's existence is read from
    ``information_schema``, which hides a table the user holds no privilege on: callers that
    must tell "unreadable" from "missing" probe it first (the reader does at a fresh start).
    """
    db, _, name = table.partition(".")
    quoted_table(table)  # validates the name
    cursor.execute(fence_exists_sql(), (db, name))
    found = cursor.fetchone()
    if not found or not int(found[0]):
        return INITIAL_FENCE
    cursor.execute(select_fence_sql(table))
    row = cursor.fetchone()
    return INITIAL_FENCE if row is None else parse_fence(row)


def ensure_fence_table(conn: Any, table: str) -> FenceState:
    """Create the fence table and its row if missing (a DB-API connection that may CREATE), and
    return the row's state. Committed on return."""
    cursor = conn.cursor()
    try:
        for statement in create_fence_sql(table):
            cursor.execute(statement)
        conn.commit()
        state = read_fence(cursor, table)
        conn.commit()
        return state
    finally:
        cursor.close()

"""Row changes -> change events (DESIGN §3.1), and what a DDL statement means for the mapping.

Pure: no client, no clock.

* A primary-key update becomes a delete of the old key then an insert (``c``) of the new one,
  both at the row's version, in that order.
* ``tx.index`` counts the events of one MySQL transaction; ``tx.id`` is its GTID, or
  ``file:offset`` of the event that opened it when the server has no GTIDs.
* DDL: ALTER/CREATE/RENAME need nothing here (rows decode with the layout their own table-map
  event carries; the mapping follows table *names*, so after ``RENAME a TO b`` the events of
  ``b`` are those of the table now called ``b``). TRUNCATE of a mapped table deletes rows
  below the row level: the reader stops with exit 3 and says how to re-sync (see
  :func:`truncated_tables`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from replicator.errors import UnmappableSchemaError
from replicator.events import ChangeEvent, Position, Row, TxInfo, binlog_version
from replicator.reader.items import RowsChange

_TRUNCATE = re.compile(r"^\s*TRUNCATE\s+(?:TABLE\s+)?(?P<name>[`\w$.]+)", re.IGNORECASE)
_DDL_TABLES = re.compile(
    r"^\s*(?:ALTER\s+(?:ONLINE\s+|IGNORE\s+)*TABLE|CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?TABLE"
    r"(?:\s+IF\s+NOT\s+EXISTS)?|DROP\s+(?:TEMPORARY\s+)?TABLE(?:\s+IF\s+EXISTS)?|RENAME\s+TABLE)\s+(?P<rest>.*)",
    re.IGNORECASE | re.DOTALL,
)
_NAME = re.compile(r"(`(?:[^`]|``)+`|[\w$]+)(?:\s*\.\s*(`(?:[^`]|``)+`|[\w$]+))?")


@dataclass(frozen=True, slots=True)
class TxContext:
    id: str
    gtid: str | None


def _unquote(part: str) -> str:
    return part[1:-1].replace("``", "`") if part.startswith("`") else part


def qualified(name: str, default_db: str) -> str:
    m = _NAME.match(name)
    if not m:
        return name
    first, second = m.group(1), m.group(2)
    return f"{_unquote(first)}.{_unquote(second)}" if second else f"{default_db}.{_unquote(first)}"


def truncated_tables(query: str, default_db: str) -> list[str]:
    m = _TRUNCATE.match(query)
    return [qualified(m["name"], default_db)] if m else []


_DML = re.compile(
    r"^\s*(?:INSERT(?:\s+(?:LOW_PRIORITY|DELAYED|HIGH_PRIORITY|IGNORE))*(?:\s+INTO)?|REPLACE(?:\s+INTO)?"
    r"|UPDATE(?:\s+(?:LOW_PRIORITY|IGNORE))*|DELETE(?:\s+(?:LOW_PRIORITY|QUICK|IGNORE))*\s+FROM"
    r"|LOAD\s+DATA.*?INTO\s+TABLE)\s+(?P<name>[`\w$.]+)",
    re.IGNORECASE | re.DOTALL,
)


def dml_tables(query: str, default_db: str) -> list[str]:
    """The table a DML statement logged as a statement changes (binlog_format=STATEMENT in a session)."""
    m = _DML.match(query)
    return [qualified(m["name"], default_db)] if m else []


def ddl_tables(query: str, default_db: str) -> list[str]:
    """Tables a DDL statement names (best effort, for logging which mapped tables changed)."""
    m = _DDL_TABLES.match(query)
    if not m:
        return truncated_tables(query, default_db)
    return [qualified(n.group(0), default_db) for n in _NAME.finditer(m["rest"])
            if n.group(0).upper() not in {"TO", "ADD", "IF", "EXISTS", "LIKE", "AS"}][:8]


def _pk(row: Row, names: tuple[str, ...]) -> Row:
    return {k: row[k] for k in names}


def require_primary_key(change: RowsChange) -> None:
    schema = change.schema
    if not schema.primary_key:
        raise UnmappableSchemaError(
            f"{schema.source} has no primary key at {change.file}:{change.offset}; change events are keyed "
            "by it. Add a primary key to the table (or remove it from the mapping), then restart the reader."
        )


def build_events(change: RowsChange, tx: TxContext, first_index: int, *,
                 ts_ms: int | None = None, generation: int = 0) -> list[ChangeEvent]:
    """The change events of one rows event, numbered from ``first_index`` within the transaction.

    ``ts_ms``: the transaction's commit time (its XID/COMMIT event); default: the rows event's time.
    ``generation``: the version generation in force at the rows event (:mod:`replicator.fence`).
    """
    require_primary_key(change)
    schema = change.schema
    pk_names = schema.primary_key
    out: list[ChangeEvent] = []
    idx = first_index
    ts_ms = change.ts * 1000 if ts_ms is None else ts_ms
    columns, fingerprint = schema.typed_columns, schema.fingerprint
    for row_i, images in enumerate(change.rows):
        pos = Position(change.file, change.offset, row_i, tx.gtid)
        steps: list[tuple[str, Row | None, Row | None]]
        if change.kind == "insert":
            steps = [("c", None, images[0])]
        elif change.kind == "delete":
            steps = [("d", images[0], None)]
        else:
            before, after = images
            if _pk(before, pk_names) == _pk(after, pk_names):
                steps = [("u", before, after)]
            else:
                steps = [("d", before, None), ("c", None, after)]
        for half, (op, before_row, after_row) in enumerate(steps):
            # The insert half of a key change sorts after its delete half (events.binlog_version).
            version = binlog_version(change.file, change.offset, row_i, generation, half)
            image = after_row if after_row is not None else before_row
            assert image is not None
            out.append(ChangeEvent(
                op=op, db=schema.db, table=schema.table, pk=_pk(image, pk_names), before=before_row,  # type: ignore[arg-type]
                after=after_row, pos=pos, version=version, ts_ms=ts_ms, tx=TxInfo(tx.id, idx),
                schema=fingerprint, columns=columns,
            ))
            idx += 1
    return out

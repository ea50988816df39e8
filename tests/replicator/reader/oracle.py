"""The expected change sequence of a table, read straight from the binlog by a bare
python-mysql-replication loop (an oracle independent of the reader's own decoding; the test
tables use only INT and VARCHAR, which the library decodes correctly)."""

from __future__ import annotations

import random
from typing import Any

from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from replicator.events import ChangeEvent

Change = tuple[str, tuple[Any, ...], tuple[tuple[str, Any], ...] | None]  # (op, pk, row image or None)


def binlog_changes(
    env: dict[str, str],
    db: str,
    table: str,
    pk: tuple[str, ...],
    start: tuple[str, int],
    end: tuple[str, int],
) -> list[Change]:
    stream = BinLogStreamReader(
        connection_settings={
            "host": env["REPLICATOR_MYSQL__HOST"],
            "port": int(env["REPLICATOR_MYSQL__PORT"]),
            "user": env["STACK_MYSQL_ADMIN_USER"],
            "password": env["STACK_MYSQL_ADMIN_PASSWORD"],
        },
        server_id=random.randint(5_000_000, 6_000_000),
        log_file=start[0],
        log_pos=start[1],
        resume_stream=True,
        blocking=False,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
        only_schemas=[db],
        only_tables=[table],
        enable_logging=False,
    )
    out: list[Change] = []
    try:
        for ev in stream:
            if (stream.log_file, ev.packet.log_pos) > end:
                break
            for row in ev.rows:
                if isinstance(ev, WriteRowsEvent):
                    out.append(("c", _key(row["values"], pk), _image(row["values"])))
                elif isinstance(ev, DeleteRowsEvent):
                    out.append(("d", _key(row["values"], pk), _image(row["values"])))
                else:
                    before, after = row["before_values"], row["after_values"]
                    if _key(before, pk) == _key(after, pk):
                        out.append(("u", _key(after, pk), _image(after)))
                    else:
                        out.append(("d", _key(before, pk), _image(before)))
                        out.append(("c", _key(after, pk), _image(after)))
    finally:
        stream.close()
    return out


def _key(values: dict[str, Any], pk: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(values[k] for k in pk)


def _image(values: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(values.items()))


def event_change(ev: ChangeEvent, pk: tuple[str, ...]) -> Change:
    return (ev.op, tuple(ev.pk[k] for k in pk), _image(ev.row))


def per_key(changes: list[Change]) -> dict[tuple[Any, ...], list[Change]]:
    out: dict[tuple[Any, ...], list[Change]] = {}
    for c in changes:
        out.setdefault(c[1], []).append(c)
    return out

"""Start-up checks of the source server: pure verdicts over what the server reported.

Each function takes plain rows (as :mod:`replicator.reader.server` reads them) and raises
the error that stops the reader with exit 3 and a message saying what to do (DESIGN §4
invariants 6 and 8). Nothing here talks to a server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from replicator.errors import BinlogPurgedError, GrantsMissingError, SourceConfigError
from replicator.mapping.foreign_keys import CascadeGraph, ForeignKey, parse_foreign_keys

REQUIRED_BINLOG = {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL",
                   "binlog_row_metadata": "FULL"}
_JSON_CHECK = re.compile(r"^\s*json_valid\(\s*`((?:[^`]|``)+)`\s*\)\s*$", re.IGNORECASE)


def check_binlog_settings(variables: Mapping[str, str]) -> None:
    wrong = [f"{k}={variables.get(k, '(unset)')} (need {v})" for k, v in REQUIRED_BINLOG.items()
             if str(variables.get(k, "")).upper() != v]
    if wrong:
        raise SourceConfigError(
            "the source binlog cannot carry full row changes: " + ", ".join(wrong)
            + ". Set them in the server configuration ([mysqld]/[mariadbd]: log_bin, binlog_format=ROW, "
            "binlog_row_image=FULL, binlog_row_metadata=FULL), restart it, and start the reader again."
        )


def check_grants(grant_lines: Iterable[str], user: str) -> None:
    text = " ".join(grant_lines).upper()
    if "ALL PRIVILEGES ON *.*" in text:
        return
    missing = []
    if "REPLICATION SLAVE" not in text and "REPLICATION REPLICA" not in text:
        missing.append("REPLICATION SLAVE")
    if not any(g in text for g in ("REPLICATION CLIENT", "BINLOG MONITOR", "SUPER")):
        missing.append("REPLICATION CLIENT (MariaDB: BINLOG MONITOR)")
    if "SELECT" not in text:
        missing.append("SELECT")
    if missing:
        raise GrantsMissingError(
            f"MySQL user {user!r} (mysql.user) lacks {', '.join(missing)}; run: GRANT REPLICATION SLAVE, "
            f"REPLICATION CLIENT, SELECT ON *.* TO '{user}'@'<host>' as an administrator"
        )


def check_primary_keys(mapped: Iterable[str], existing: set[str], with_pk: set[str]) -> None:
    missing = sorted(t for t in mapped if t in existing and t not in with_pk)
    if missing:
        raise SourceConfigError(
            f"mapped table(s) without a primary key: {', '.join(missing)}. Change events are keyed by "
            "the primary key; add one (ALTER TABLE ... ADD PRIMARY KEY (...)) or remove the table from "
            "the mapping."
        )


def foreign_keys_of(db: str, table: str, create_sql: str) -> list[tuple[str, str, str, str, str, str]]:
    """Foreign keys from ``SHOW CREATE TABLE`` (MariaDB hides REFERENTIAL_CONSTRAINTS from a SELECT-only
    user): (db, table, constraint, parent db, parent table, rules)."""
    out = []
    for fk in parse_foreign_keys(db, table, create_sql):
        parent_db, parent_table = fk.parent.split(".", 1)
        out.append((db, table, fk.name, parent_db, parent_table, fk.rules))
    return out


def check_fk_cascades(mapped: set[str], constraints: Iterable[tuple[str, str, str, str, str, str]]) -> None:
    """``constraints``: (db, child table, constraint, parent db, parent table, "ON DELETE .. ON UPDATE ..").

    A cascade between two mapped tables is reproduced by the writer (docs/design.md, "Foreign-key
    cascades"); one the writer cannot see (from an unmapped parent) or cannot reproduce stops the
    reader, naming the constraint and what to do.
    """
    fks = []
    for db, child, name, parent_db, parent, rules in constraints:
        found = dict(re.findall(r"ON\s+(DELETE|UPDATE)\s+(CASCADE|SET\s+NULL|SET\s+DEFAULT)", rules.upper()))
        fks.append(ForeignKey(name, f"{db}.{child}", ("?",), f"{parent_db}.{parent}", ("?",),
                              on_delete=" ".join(found.get("DELETE", "RESTRICT").split()),  # type: ignore[arg-type]
                              on_update=" ".join(found.get("UPDATE", "RESTRICT").split())))  # type: ignore[arg-type]
    bad = CascadeGraph(fks, mapped).unreproducible()
    if bad:
        advice = ("Or replace ON DELETE/UPDATE CASCADE or SET NULL with RESTRICT and let the application "
                  "change the children, or remove the child table from the mapping.")
        raise SourceConfigError(
            "foreign-key actions change mapped rows below the binlog, which holds only the parent's change, "
            f"and these cannot be reproduced: {'; '.join(bad)}. {advice}"
        )


def check_position_available(file: str, binlog_files: list[str], where: str) -> None:
    if file not in binlog_files:
        oldest = binlog_files[0] if binlog_files else "(none)"
        raise BinlogPurgedError(
            f"{where} {file} is no longer on the server (oldest binlog: {oldest}); the changes since are "
            "lost to the binlog. Re-snapshot the mapped tables with `replicator backfill` and restart the "
            "reader with --from at the position the backfill reports, after deleting the checkpoint topic."
        )


def json_columns(check_rows: Iterable[tuple[str, str, str]]) -> dict[str, frozenset[str]]:
    """MariaDB JSON columns: (db, table, CHECK_CLAUSE) rows with ``json_valid(`col`)``."""
    found: dict[str, set[str]] = {}
    for db, table, clause in check_rows:
        m = _JSON_CHECK.match(clause or "")
        if m:
            found.setdefault(f"{db}.{table}", set()).add(m.group(1).replace("``", "`"))
    return {k: frozenset(v) for k, v in found.items()}


def display_widths(version: str) -> bool:
    """Whether COLUMN_TYPE prints integer display widths: MariaDB and MySQL < 8.0.19 do."""
    if "mariadb" in version.lower():
        return True
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    return not m or tuple(int(x) for x in m.groups()) < (8, 0, 19)

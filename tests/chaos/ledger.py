"""The application's ledger: what it asked MySQL to do and what it was told, across kill -9.

The chaos application (``tests/chaos/app.py``) writes one JSON line before each write
(``intent``: the rows it will leave, by id, ``null`` for a deleted row) and one after it
(``ok``: acknowledged; ``rolledback``: the application rolled it back on purpose; ``failed``:
an error, so the outcome is unknown). An intent without an outcome (the process was killed)
is unknown too. From the ledger, each id has the states MySQL may hold:

- after an acknowledged write, exactly the state written (the write must be there);
- after an unknown outcome, the previous possibilities or the new state;
- a rolled-back transaction changes nothing.

An id whose possibilities are not a single state is *uncertain*: the application never writes
it again (it could not know what its write would mean). Pure: no I/O but reading the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

State = dict[str, str] | None  # the compared columns as text, or None: no such row


@dataclass
class Ledger:
    possible: dict[int, list[State]] = field(default_factory=dict)
    pending: dict[int, dict[int, State]] = field(default_factory=dict)  # op -> its rows
    acknowledged: int = 0
    unknown: int = 0
    rolled_back: int = 0
    last_op: int = 0

    def intent(self, op: int, rows: Mapping[int, State]) -> None:
        self.pending[op] = dict(rows)
        self.last_op = max(self.last_op, op)

    def ok(self, op: int) -> None:
        for rid, state in self.pending.pop(op, {}).items():
            self.possible[rid] = [state]
        self.acknowledged += 1

    def failed(self, op: int) -> None:
        for rid, state in self.pending.pop(op, {}).items():
            seen = self.possible.setdefault(rid, [None])
            if state not in seen:
                seen.append(state)
        self.unknown += 1

    def rolledback(self, op: int) -> None:
        self.pending.pop(op, None)
        self.rolled_back += 1

    def settle(self) -> None:
        """Intents without an outcome (the writer was killed) are unknown outcomes."""
        for op in list(self.pending):
            self.failed(op)

    def state(self, rid: int) -> State:
        """The one state of a certain id (None when absent or never written)."""
        seen = self.possible.get(rid, [None])
        return seen[0]

    def certain(self, rid: int) -> bool:
        return len(self.possible.get(rid, [None])) == 1

    def live(self) -> list[int]:
        """Certain ids that hold a row."""
        return [rid for rid, seen in self.possible.items() if len(seen) == 1 and seen[0] is not None]

    def next_id(self) -> int:
        ids = set(self.possible) | {rid for rows in self.pending.values() for rid in rows}
        return max(ids, default=0) + 1

    def violations(self, mysql: Mapping[int, State]) -> list[str]:
        """Ids whose MySQL state is none of those the acknowledged writes allow."""
        out = []
        for rid, seen in sorted(self.possible.items()):
            have = mysql.get(rid)
            if have not in seen:
                out.append(f"id {rid}: MySQL holds {have}, the acknowledged writes allow {seen}")
        for rid in sorted(set(mysql) - set(self.possible)):
            out.append(f"id {rid}: MySQL holds {mysql[rid]}, the application never wrote it")
        return out


def parse(lines: Iterable[str]) -> Ledger:
    """The ledger of these lines; a torn last line (kill -9 mid-write) is ignored."""
    ledger = Ledger()
    for line in lines:
        try:
            rec: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        op = int(rec["op"])
        if rec["t"] == "intent":
            ledger.intent(op, {int(k): v for k, v in rec["rows"].items()})
        elif rec["t"] == "ok":
            ledger.ok(op)
        elif rec["t"] == "rolledback":
            ledger.rolledback(op)
        else:
            ledger.failed(op)
    return ledger


def read(path: Path) -> Ledger:
    if not path.exists():
        return Ledger()
    with path.open(encoding="utf-8") as f:
        return parse(f)


class LedgerWriter:
    """Appends records, each flushed to the OS before the write it describes goes on."""

    def __init__(self, path: Path) -> None:
        self._f = path.open("a", encoding="utf-8")

    def record(self, t: str, op: int, rows: Mapping[int, State] | None = None) -> None:
        rec: dict[str, Any] = {"t": t, "op": op}
        if rows is not None:
            rec["rows"] = {str(k): v for k, v in rows.items()}
        self._f.write(json.dumps(rec, separators=(",", ":")) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()

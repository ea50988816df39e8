"""The campaign's application: a random workload through ``replicator.client``, with a ledger.

    python -m tests.chaos.app --config FILE --ledger FILE --seed N --table DB.items
                              [--incarnation K] [--ops-per-s R]

Run as its own process, so that the campaign can kill -9 it, pause it and cut its links like
any pipeline process. It writes inserts, updates, deletes, primary-key updates, multi-row
transactions and transactions it rolls back on purpose, and reads (phase 3 compares them, phase
4 serves them from DynamoDB). Before each write it appends the intent to the ledger and after it
the outcome (:mod:`tests.chaos.ledger`); on a restart it reads the ledger back and writes only
ids whose state it knows. It stops on SIGTERM after the operation in progress.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from replicator.client import Client, connect
from replicator.errors import ReplicatorError
from tests.chaos.ledger import LedgerWriter, State, read

CONNECT_WAIT_S = 90.0
_NAMES = ("ada", "Grüße", "日本", "o'brien", "emoji 🦆", "", "x" * 50)  # + "#<op>": within VARCHAR(64)


class _RollBack(Exception):
    """Raised inside a transaction to roll it back on purpose."""


def compared(row: dict[str, Any]) -> dict[str, str]:
    """The columns the ledger follows, as text (MySQL's values and the app's, alike)."""
    return {"grp": str(row["grp"]), "name": str(row["name"]), "amount": f"{float(row['amount']):.2f}"}


class Workload:
    def __init__(self, client: Client, table: str, ledger_path: Path, rng: random.Random) -> None:
        self.client, self.table, self.rng = client, table, rng
        self.ledger = read(ledger_path)
        self.ledger.settle()
        self.writer = LedgerWriter(ledger_path)
        self.next_id = self.ledger.next_id()
        self.op = self.ledger.last_op + 1
        self.counts: dict[str, int] = {}

    def _row(self, rid: int) -> dict[str, Any]:
        r = self.rng
        return {"id": rid, "grp": r.randint(0, 9), "name": f"{r.choice(_NAMES)}#{self.op}",
                "amount": f"{r.randint(0, 10**8) / 100:.2f}",
                "note": None if r.random() < 0.3 else "n" * r.randint(0, 300),
                "at": dt.datetime(2026, 1, 1) + dt.timedelta(microseconds=r.randint(0, 10**13)),
                "raw": r.randbytes(r.randint(0, 16))}

    def _fresh(self) -> int:
        rid = self.next_id
        self.next_id += 1
        return rid

    def _known(self) -> int | None:
        live = self.ledger.live()
        return self.rng.choice(live) if live else None

    def step(self) -> None:
        kind = self.rng.choices(("insert", "update", "delete", "rekey", "multi", "rollback", "read"),
                                weights=(30, 30, 10, 8, 12, 5, 15))[0]
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind == "read":
            rid = self._known()
            if rid is not None:
                self.client.table(self.table).get({"id": rid})
            return
        plan = self._plan(kind)
        if not plan:
            return
        rows: dict[int, State] = {}
        for action, rid, row, new_id in plan:
            if action == "delete":
                rows[rid] = None
            elif action == "rekey":
                rows[rid] = None
                rows[new_id] = compared({**row, "id": new_id})
            else:
                rows[rid] = compared(row)
        op = self.op
        self.op += 1
        self.writer.record("intent", op, rows)
        try:
            with self.client.transaction() as tx:
                t = tx.table(self.table)
                for action, rid, row, new_id in plan:
                    if action == "insert":
                        t.insert(row)
                    elif action == "update":
                        t.update({"id": rid}, {k: v for k, v in row.items() if k != "id"})
                    elif action == "rekey":
                        t.update({"id": rid}, {**{k: v for k, v in row.items() if k != "id"}, "id": new_id})
                    else:
                        t.delete({"id": rid})
                if kind == "rollback":
                    raise _RollBack
        except _RollBack:
            self.writer.record("rolledback", op)
            self.ledger.rolledback(op)
            return
        except ReplicatorError as exc:
            self._failed(op, rows, exc)
            return
        except Exception as exc:  # a bug to report: counted, logged, outcome unknown
            print(f"chaos_app_unexpected_error {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            self._failed(op, rows, exc)
            return
        self.writer.record("ok", op)
        self.ledger.intent(op, rows)
        self.ledger.ok(op)

    def _failed(self, op: int, rows: dict[int, State], exc: BaseException) -> None:
        self.writer.record("failed", op)
        self.ledger.intent(op, rows)
        self.ledger.failed(op)
        self.counts["failed"] = self.counts.get("failed", 0) + 1
        print(f"chaos_app_write_failed op={op} {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    def _plan(self, kind: str) -> list[tuple[str, int, dict[str, Any], int]]:
        """(action, id, row, new id) steps; ids taken only among those the ledger is sure of."""
        n = self.rng.randint(2, 5) if kind in ("multi", "rollback") else 1
        steps: list[tuple[str, int, dict[str, Any], int]] = []
        used: set[int] = set()
        for _ in range(n):
            action = kind if kind not in ("multi", "rollback") else self.rng.choice(
                ("insert", "insert", "update", "update", "delete", "rekey"))
            if action == "insert":
                rid = self._fresh()
                steps.append(("insert", rid, self._row(rid), 0))
                continue
            known = self._known()
            if known is None or known in used:
                continue
            rid = known
            used.add(rid)
            new_id = self._fresh() if action == "rekey" else 0
            steps.append((action, rid, self._row(rid), new_id))
        return steps


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.chaos.app")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--ledger", type=Path, required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--incarnation", type=int, default=0, help="how many times it was started before")
    p.add_argument("--ops-per-s", type=float, default=30.0)
    args = p.parse_args(argv)
    stopping = False

    def _stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    # A torn last line (kill -9 mid-write) must not swallow the next record.
    if args.ledger.exists() and args.ledger.stat().st_size:
        with args.ledger.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                args.ledger.open("a").write("\n")
    deadline = time.monotonic() + CONNECT_WAIT_S
    while True:
        try:
            client = connect(args.config, name="chaos-app")
            break
        except ReplicatorError as exc:
            if stopping or time.monotonic() > deadline:
                print(f"chaos_app_cannot_connect: {exc}", file=sys.stderr, flush=True)
                return 2
            time.sleep(1.0)
    rng = random.Random(f"{args.seed}:{args.incarnation}")
    work = Workload(client, args.table, args.ledger, rng)
    pace = 1.0 / args.ops_per_s
    try:
        while not stopping:
            t0 = time.monotonic()
            try:
                work.step()
            except ReplicatorError as exc:  # a failed read: nothing to record
                print(f"chaos_app_read_failed {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            time.sleep(max(0.0, pace - (time.monotonic() - t0)))
    finally:
        work.writer.close()
        print(f"chaos_app_done {work.counts}", file=sys.stderr, flush=True)
        try:
            client.close()
        except ReplicatorError as exc:
            print(f"chaos_app_close_failed: {exc}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

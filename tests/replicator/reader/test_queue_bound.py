"""The pump's hand-over queue is bounded by rows, not transactions: a backlog of large
transactions waits in the binlog, not in memory (issue 15)."""

from __future__ import annotations

import threading
from collections import Counter

from replicator.reader.checkpoint import Checkpoint
from replicator.reader.transactions import CAUGHT_UP, CompleteTx, RowBoundedQueue


def tx(rows: int) -> CompleteTx:
    return CompleteTx([], rows, Counter(), Checkpoint("mysql-bin.000001", 4, None, ""))


def test_a_put_waits_once_the_queue_holds_its_rows() -> None:
    q = RowBoundedQueue(100)
    q.put(tx(60))
    q.put(tx(39))  # 61 + 40 = 101 >= 100: full now
    done = threading.Event()
    putter = threading.Thread(target=lambda: (q.put(tx(1)), done.set()), daemon=True)
    putter.start()
    assert not done.wait(0.3)  # held back while 101 rows' weight is queued
    assert q.get().rows == 60
    assert done.wait(10)
    assert q.weight == 40 + 2


def test_an_empty_queue_takes_a_transaction_larger_than_its_bound() -> None:
    q = RowBoundedQueue(10)
    q.put(tx(5000), timeout=1)  # a MySQL transaction is never split or refused
    assert q.full() and q.get().rows == 5000 and q.weight == 0


def test_markers_weigh_one_and_leave_nothing_behind() -> None:
    q = RowBoundedQueue(10)
    q.put(CAUGHT_UP)
    q.put(tx(3))
    assert q.weight == 1 + 4
    assert q.get() is CAUGHT_UP and q.get().rows == 3 and q.weight == 0 and q.empty()

"""Writes inside a transaction: atomic on the store that takes them, under one phase snapshot.

Phases 1-4: one MySQL transaction, whose first statement reads the fence row under a shared
lock (a MySQL fenced by a switch its phase has not seen yet sends the write to the current
phase before anything is written). Phase 5: one optimistic DynamoDB write
(:mod:`replicator.client.phase5`). A switch of the write target in progress holds new writes
(bounded) through the client's :class:`~replicator.client.lease.WriteGate`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from replicator.client.dynamo_side import MAX_TRANSACT_ITEMS
from replicator.client.mysql_side import (
    MySQLTransaction,
    delete_sql,
    insert_sql,
    sql_param,
    update_sql,
)
from replicator.client.phase5 import Phase5Batch
from replicator.control import PhaseState
from replicator.errors import (
    ConditionFailed,
    FencedError,
    KeyShapeError,
    ReplicatorError,
    TransactionCancelled,
    WriteConflictError,
)
from replicator.events import Row
from replicator.mapping.fit import check_row_fits
from replicator.phase.fences import condition_check

if TYPE_CHECKING:
    from replicator.client.client import Client
    from replicator.client.table import Key, Table

log = structlog.get_logger("replicator.client")

T = TypeVar("T")
_CONFLICT_RETRIES = 5


# --------------------------------------------------------------------------- transactions


class Transaction:
    """``with client.transaction() as tx``: writes atomic on the store that takes writes."""

    def __init__(self, client: Client, state: PhaseState) -> None:
        self._c = client
        self.state = state
        # source -> (key text, key) of each row written, for read-your-writes
        self.written: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.operations = 0

    def table(self, source: str) -> TxTable:
        return TxTable(self, self._c.table(source))


class MySQLClientTransaction(Transaction):
    def __init__(self, client: Client, state: PhaseState, tx: MySQLTransaction) -> None:
        super().__init__(client, state)
        self.mysql = tx


class DynamoClientTransaction(Transaction):
    def __init__(self, client: Client, state: PhaseState) -> None:
        super().__init__(client, state)
        self.batch = Phase5Batch(client.dynamo, client.settings.dynamodb.tombstone_ttl_s, state.generation,
                                 condition_check(client.dynamodb_fence_table, state.generation))


class TxTable:
    """One table inside a transaction."""

    def __init__(self, tx: Transaction, table: Table) -> None:
        self._tx = tx
        self._t = table

    def insert(self, row: Mapping[str, Any]) -> dict[str, Any]:
        t, tx = self._t, self._tx
        values = t.values(row)
        tx.operations += 1
        if isinstance(tx, MySQLClientTransaction):
            columns = list(row)
            tx.mysql.execute(insert_sql(t.source, columns), [sql_param(t.mapper, c, row[c]) for c in columns],
                             f"inserting into {t.source}")
            key = {c: row[c] for c in t.mapper.primary_key if c in row}
            if len(key) < len(t.mapper.primary_key) and len(t.mapper.primary_key) == 1:
                key = {t.mapper.primary_key[0]: tx.mysql.last_insert_id}
            self._written({**key, **{c: row[c] for c in t.key_extra if c in row}})
            return key
        assert isinstance(tx, DynamoClientTransaction)
        missing = [c for c in t.mapper.primary_key if c not in row]
        if missing:
            raise KeyShapeError(f"{t.source}: phase-5 inserts need the primary key {missing}: DynamoDB "
                                "has no AUTO_INCREMENT")
        full = {c: values.get(c) for c in t.mapper.attributes}
        self._check_fits(full, row)
        if t.embedded is not None:
            t.dynamo_key(full)  # its parent's item key, or a KeyShapeError naming embed.on
            tx.batch.entry_insert(t, full)
        else:
            tx.batch.insert(t, full)
        return {c: row[c] for c in t.mapper.primary_key}

    def update(self, key: Key, changes: Mapping[str, Any]) -> int:
        t, tx = self._t, self._tx
        pk = t.key_of(key)
        new_values = t.values(changes)  # refuses unknown columns and bad values before any store
        tx.operations += 1
        if isinstance(tx, MySQLClientTransaction):
            if not changes:
                return 0
            columns = list(changes)
            n = tx.mysql.execute(
                update_sql(t.source, columns, t.mapper.primary_key),
                [sql_param(t.mapper, c, changes[c]) for c in columns]
                + [sql_param(t.mapper, c, pk[c]) for c in t.mapper.primary_key], f"updating {t.source}")
            self._written(pk)
            self._written({c: changes.get(c, pk[c]) for c in t.mapper.primary_key})
            return n
        assert isinstance(tx, DynamoClientTransaction)
        item_key = t.dynamo_key(pk)
        if t.embedded is not None:
            current = tx.batch.entry_current(t, t.values(pk))
        else:
            current = tx.batch.current(t, item_key)
        if current is None:
            return 0
        self._check_fits({**current, **new_values}, changes)
        if t.embedded is not None:
            return tx.batch.entry_update(t, t.values(pk), new_values)
        return tx.batch.update(t, item_key, new_values)

    def delete(self, key: Key) -> int:
        t, tx = self._t, self._tx
        pk = t.key_of(key)
        tx.operations += 1
        if isinstance(tx, MySQLClientTransaction):
            n = tx.mysql.execute(delete_sql(t.source, t.mapper.primary_key),
                                 [sql_param(t.mapper, c, pk[c]) for c in t.mapper.primary_key],
                                 f"deleting from {t.source}")
            self._written(pk)
            return n
        assert isinstance(tx, DynamoClientTransaction)
        item_key = t.dynamo_key(pk)
        if t.embedded is not None:
            return tx.batch.entry_delete(t, t.values(pk))
        return tx.batch.delete(t, item_key)

    def _written(self, key: Mapping[str, Any]) -> None:
        self._tx.written.setdefault(self._t.source, []).append((self._t.key_text(key), dict(key)))

    def _check_fits(self, row: Row, given: Mapping[str, Any]) -> None:
        excluded = [c for c in given if c not in self._t.mapper.attributes]
        if excluded:
            raise KeyShapeError(f"{self._t.source}: column(s) {excluded} are excluded from the mapping "
                                "(tables[].exclude), so DynamoDB cannot keep them in phase 5")
        check_row_fits(self._t.mapper, row)


@contextmanager
def run_transaction(client: Client) -> Iterator[Transaction]:
    """The body of :meth:`Client.transaction`: one phase snapshot, one store, atomic.

    It waits while a switch of the write target is in progress (bounded), and a MySQL fenced
    under a stale phase sends it to the current phase before anything is written.
    """
    state = client.gate.enter()
    inside = True  # one enter() is matched by exactly one leave()
    try:
        if state.phase < 5:
            yielded = False
            try:
                with client.mysql.transaction(client.mysql_fence_sql) as mtx:
                    tx = MySQLClientTransaction(client, state, mtx)
                    yielded = True
                    yield tx
            except FencedError:
                if yielded:
                    raise
                client.metrics.writes.labels("mysql", "write", "fenced").inc()
                client.gate.leave()
                inside = False
                client.refresh_phase()
                state = client.gate.enter()
                inside = True
                if state.phase < 5:
                    raise
            else:
                _after_mysql(client, state, tx, mtx)
                return
        dtx = DynamoClientTransaction(client, state)
        yield dtx
        _commit_dynamodb(client, dtx)
    finally:
        if inside:
            client.gate.leave()


def _after_mysql(client: Client, state: PhaseState, tx: MySQLClientTransaction,
                 mtx: MySQLTransaction) -> None:
    if tx.operations > MAX_TRANSACT_ITEMS:
        client.metrics.oversized_transactions.inc()
        log.warning("transaction_over_dynamodb_limit", operations=tx.operations, limit=MAX_TRANSACT_ITEMS,
                    hint="this transaction will fail once DynamoDB takes the writes (phase 5): split it")
    for source, keys in tx.written.items():
        client.metrics.writes.labels("mysql", "write", "ok").inc(len(keys))
        # In every phase, phase 1 included: the writer is paused there, so a row written in phase 1
        # may still be on its way when reads move to DynamoDB (phase 4) after a quick walk forward.
        client.recent.record(source, keys, mtx.gtid)


def _commit_dynamodb(client: Client, dtx: DynamoClientTransaction) -> None:
    try:
        written = dtx.batch.commit()
    except FencedError:
        client.metrics.writes.labels("dynamodb", "write", "fenced").inc()
        client.refresh_phase()
        raise
    except (ConditionFailed, TransactionCancelled) as exc:
        client.metrics.writes.labels("dynamodb", "write", "conflict").inc()
        log.info("dynamodb_write_conflict", marker="DualWrite", error=str(exc))
        raise WriteConflictError(f"a phase-5 write lost its version condition to a concurrent write; "
                                 f"nothing was written: retry it ({exc})") from exc
    except ReplicatorError as exc:
        client.metrics.writes.labels("dynamodb", "write", "failed").inc()
        log.warning("dynamodb_write_failed", marker="DualWrite", error=str(exc), phase=5)
        raise
    client.metrics.writes.labels("dynamodb", "write", "ok").inc(written)


def retry_conflicts(op: Callable[[], T]) -> T:
    """Run a single-row write again (from its read) when a concurrent phase-5 write won the race,
    or when the store it wrote was fenced by a switch its phase had not seen yet."""
    for attempt in range(_CONFLICT_RETRIES):
        try:
            return op()
        except (WriteConflictError, FencedError):
            if attempt == _CONFLICT_RETRIES - 1:
                raise
            time.sleep(0.002 * (attempt + 1))
    raise AssertionError("unreachable")

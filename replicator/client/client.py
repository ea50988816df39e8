"""The application client (DESIGN §3.5): ``connect()`` and the :class:`Client` it returns.

One client per application process, shared by its threads. It holds a MySQL connection
pool, a DynamoDB client, the control store (phase, counters, watermarks) and a phase watcher
that follows changes within a second. Every operation takes one phase snapshot and runs
under it from start to end; a control store that becomes unreachable leaves the client on
its last known phase (counted, logged), never failing an application call.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import structlog

from replicator.adapters.dynamodb import dynamodb_client
from replicator.client.dynamo_side import DynamoSide
from replicator.client.freshness import RecentWrites, combine
from replicator.client.lease import Lease, WriteGate
from replicator.client.metrics import ClientMetrics, GateCounters
from replicator.client.mysql_side import ConnectionPool, MySQLSide, check_fence_readable, load_shape
from replicator.client.table import Table
from replicator.client.transactions import Transaction, run_transaction
from replicator.client.validation import DualReadValidator
from replicator.control import ControlStore, PhaseState, names, open_control_store
from replicator.control.watermark import PipelineWatermark
from replicator.errors import ControlStoreUnavailable, ReplicatorError, UnknownTableError
from replicator.logs import set_migration_phase_field
from replicator.mapping import TableMapper
from replicator.mapping.embedded import EmbeddedMapper
from replicator.mapping.model import check_model
from replicator.mapping.uniqueness import check_key_is_unique
from replicator.metrics import CollectorRegistry
from replicator.phase.fences import dynamodb_fence_table, mysql_fence_lock_sql
from replicator.phase.metrics import PhaseMetrics
from replicator.phase.watcher import PhaseWatcher
from replicator.settings import MySQLSettings, Settings, load_settings

log = structlog.get_logger("replicator.client")

T = TypeVar("T")
StoreFactory = Callable[[Settings], ControlStore]


def connect(config: str | Path | Settings | None = None, *, name: str = "app",
            registry: CollectorRegistry | None = None,
            store_factory: StoreFactory = open_control_store) -> Client:
    """A started :class:`Client` (use it as a context manager, or call ``close()``).

    ``config``: a settings file (YAML, with ``REPLICATOR_*`` environment variables over it),
    a :class:`Settings`, or None for the environment alone. ``name``: how this application
    shows in markers, logs and status.
    """
    settings = config if isinstance(config, Settings) else load_settings(
        Path(config) if config is not None else None)
    client = Client(settings, name=name, registry=registry, store_factory=store_factory)
    client.start()
    return client


def client_mysql_settings(settings: Settings) -> MySQLSettings:
    """The MySQL settings with the application's own user, when ``client.mysql_user`` is set."""
    return settings.mysql_as(settings.client.mysql_user, settings.client.mysql_password)


class Client:
    """See the module docstring. Build with :func:`connect`; no I/O in the constructor."""

    def __init__(self, settings: Settings, *, name: str = "app", registry: CollectorRegistry | None = None,
                 store_factory: StoreFactory = open_control_store) -> None:
        self.settings = settings
        self.name = name
        self.metrics = ClientMetrics(registry)
        self._store_factory = store_factory
        self._state = PhaseState()
        self._tables: dict[str, Table] = {}
        self._closers: list[Callable[[], None]] = []
        c = settings.client
        self.recent = RecentWrites(c.remember_writes_s)
        self._pool = ConnectionPool(client_mysql_settings(settings), c.pool_size, c.read_timeout_s * 5)
        self.mysql = MySQLSide(self._pool)
        self._executor = ThreadPoolExecutor(c.dual_read_workers, thread_name_prefix="client-dynamodb")
        self._started = False
        self._down_logged = False

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._started:
            return
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        self._started = True

    def _start(self) -> None:
        s = self.settings
        store = self._store_factory(s)
        try:
            store.start()
            state = store.get_phase()
        except ControlStoreUnavailable as exc:
            raise ControlStoreUnavailable(
                f"the client cannot learn the migration phase: {exc}. Check control.backend / "
                "control.redis_url (or the DynamoDB control table) and that the store is up; the client "
                "does not start on a guessed phase") from exc
        self.store = store
        self._closers.append(store.close)
        self._set_state(state)
        self.counters = GateCounters(store, self.metrics)
        self.counters.start()
        self._closers.append(self.counters.close)
        self.watermark = PipelineWatermark(store, s)
        self.lease = Lease(store, self.name, ttl_s=s.cutover.lease_ttl_s,
                           on_failure=self.metrics.control_errors.inc)
        self.gate = WriteGate(self.lease, s.cutover.max_write_pause_s)
        self.gate.update(state)
        self.lease.start(state.phase)
        self._closers.append(self.lease.close)
        self.mysql_fence_sql = mysql_fence_lock_sql(s.cutover.fence_table)
        check_fence_readable(self._pool, s.cutover.fence_table)
        self.dynamodb_fence_table = dynamodb_fence_table(s)

        watch_store = self._store_factory(s)
        self._watcher = PhaseWatcher(watch_store, self._on_change,
                                     metrics=PhaseMetrics(self.metrics.registry))
        watch_store.start()
        self._closers.append(watch_store.close)
        self._watcher.start()
        self._closers.append(self._watcher.stop)

        pool_size = s.client.pool_size * 2 + s.client.dual_read_workers
        self.dynamo = DynamoSide(
            dynamodb_client(s.dynamodb, read_timeout_s=s.client.read_timeout_s, pool_size=pool_size),
            writer=dynamodb_client(s.dynamodb, attempts=5, read_timeout_s=max(10.0, s.client.read_timeout_s),
                                   pool_size=s.client.pool_size))
        self._closers.append(self._pool.close)
        check_model(s)
        mappers: dict[str, TableMapper] = {}
        for mapping in s.tables:
            shape = load_shape(self._pool, mapping.database, mapping.table)
            mapper = TableMapper(mapping, shape.columns, shape.pk)
            mapper.validate()
            if mapping.embed is None:
                check_key_is_unique(mapping, shape.pk, shape.unique)
            mappers[mapping.source] = mapper
        for mapping in s.tables:  # parents first: an embedded table reads through its parent's items
            if mapping.embed is None:
                self._tables[mapping.source] = Table(self, mappers[mapping.source],
                                                     s.dynamodb.table_prefix + mapping.target_name)
        for mapping in s.tables:
            if mapping.embed is not None:
                parent = self._tables[mapping.embed.parent]
                embedded = EmbeddedMapper(mappers[mapping.source], parent.mapper)
                embedded.validate()
                child = Table(self, embedded.child, parent.target, embedded=embedded)
                child.parent = parent
                self._tables[mapping.source] = child
                parent.children[embedded.attribute] = child

        self.validator = DualReadValidator(
            sample_ratio=s.validation.sample_ratio, recheck_wait_s=s.validation.recheck_wait_s,
            count=self.counters.incr, on_outcome=lambda o: self.metrics.validations.labels(o).inc(),
            on_difference=lambda table, kind: self.metrics.differences.labels(table, kind).inc(),
            position=self.mysql.current_position,
            wait_applied=lambda sources, position, timeout: self.watermark.wait_applied(
                sources, gtid=position, timeout_s=timeout))
        self.validator.start()
        self._closers.append(self.validator.close)
        self._announce()
        log.info("client_started", name=self.name, phase=self._state.phase, epoch=self._state.epoch,
                 tables=len(self._tables))

    def _announce(self) -> None:
        doc = {"name": self.name, "host": socket.gethostname(), "pid": os.getpid(), "started": time.time(),
               "phase": self._state.phase}
        try:
            self.store.put_marker(f"client.{self.name}.{socket.gethostname()}.{os.getpid()}", doc)
        except ReplicatorError as exc:
            self.metrics.control_errors.inc()
            log.warning("client_marker_not_written", error=str(exc))

    def close(self) -> None:
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except ReplicatorError as exc:
                log.warning("client_close_step_failed", error=str(exc))
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._started:
            set_migration_phase_field(None)  # this process no longer follows a phase
        self._started = False

    def __enter__(self) -> Client:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- phase

    @property
    def phase(self) -> PhaseState:
        """The phase snapshot in force (each operation takes it once, at its start)."""
        return self._state

    def _set_state(self, state: PhaseState) -> None:
        self._state = state
        self.metrics.phase.set(state.phase)
        set_migration_phase_field(state.phase)
        gate = getattr(self, "gate", None)
        if gate is not None:
            gate.update(state)

    def refresh_phase(self) -> PhaseState:
        """Read the phase document now (a store told this client its phase was stale)."""
        try:
            self._on_change(self.store.get_phase())
        except ReplicatorError as exc:
            self.metrics.control_errors.inc()
            log.warning("phase_refresh_failed", error=str(exc))
        return self._state

    def _on_change(self, state: PhaseState) -> None:
        if state.epoch <= self._state.epoch:
            return
        previous = self._state.phase
        self._set_state(state)
        log.info("client_phase_changed", marker="Migration phase", name=self.name, from_phase=previous,
                 to_phase=state.phase, epoch=state.epoch)

    # ----------------------------------------------------------------- tables, transactions

    def table(self, source: str) -> Table:
        """The handle of a mapped table, by its ``tables[].source`` (``database.table``)."""
        table = self._tables.get(source)
        if table is None:
            mapped = ", ".join(sorted(self._tables)) or "none"
            raise UnknownTableError(f"{source!r} is not a mapped table (tables[].source); mapped: {mapped}")
        return table

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Writes atomic on the store that takes them: one MySQL transaction in phases 1-4, one
        DynamoDB ``TransactWriteItems`` (at most 100 items) in phase 5."""
        with run_transaction(self) as tx:
            yield tx

    # ----------------------------------------------------------------- helpers for the tables

    def submit_dynamo(self, fn: Callable[[], T]) -> Future[T]:
        return self._executor.submit(fn)

    def dynamodb_read_failed(self, exc: ReplicatorError | None) -> None:
        reason = "timeout" if exc is None else type(exc).__name__
        self.metrics.read_errors.labels("dynamodb", reason).inc()
        self.counters.incr(names.DYNAMODB_READ_FAILED, 1)
        log.warning("dynamodb_read_failed", reason=reason, error=str(exc) if exc else "over the read budget")

    def wait_applied(self, source: str, gtids: Sequence[str]) -> bool:
        """Until the pipeline has applied ``gtids`` for ``source`` (bounded); False if it has not."""
        position = combine(gtids)
        try:
            ok = self.watermark.wait_applied([source], gtid=position,
                                             timeout_s=self.settings.client.read_your_writes_wait_s)
        except ReplicatorError as exc:
            self.metrics.control_errors.inc()
            log.warning("watermark_unavailable", error=str(exc))
            return False
        if ok:
            self.recent.applied(source, position)
        return bool(ok)


"""In-memory fakes of the Protocols the roles depend on, shared by every role's unit tests.

Product code that ships with the package, as ``structlog.testing`` and httpx's ``MockTransport``
do: the real logic (reader loop, writer loop, gate checker) runs against these without the
stack, and the tests need no ``# type: ignore`` because each fake satisfies its Protocol
structurally. None does I/O, none sleeps except where its Protocol blocks.

The reader's ports (:mod:`replicator.reader.ports`):

- :class:`MemoryBinlog`: whole transactions; ``open`` is a ``SourceFactory`` of
  :class:`MemoryChangeSource` (a ``ChangeSource``);
- :class:`MemoryBroker`: Kafka as ``read_committed`` consumers see it, a ``CheckpointStore``;
  ``sink`` is a ``SinkFactory`` of :class:`MemoryEventSink` (an ``EventSink``);
- :class:`MemorySourceServer`: a ``SourceServer``.

The writer's ports (:mod:`consumers.writer.ports`): :class:`MemoryEventConsumer`
(``EventConsumer``), :class:`MemoryDeadLetters` (``DeadLetterSink``), :class:`MemoryApplier`
(``Applier``) over :class:`MemoryDynamoDB`, which honours the version condition.

The phase probes (:mod:`replicator.phase.probes`): :class:`MemoryTableProbe` (``TableProbe``),
:class:`MemoryOffsetProbe` (``OffsetProbe``).

Time: :class:`ManualClock`, the phase ``Clock`` and the ``Callable[[], float]`` clocks and
injected sleeps of the other roles. The control store: ``MemoryControlStore`` (a
``ControlStore``), re-exported from :mod:`replicator.control.memory`.

Why the writer's fakes are generic instead of importing its types: ``replicator`` never
imports ``consumers`` (shared code lives in the core; the roles import it, not the reverse),
and the writer's Protocols and data types (``RawMessage``, ``DeadLetter``, ``WriteResult``)
live in ``consumers.writer``. Moving those into the core would put the writer's Kafka message
and dead-letter shapes there only for the sake of its test doubles. The fakes do not need
them: the consumer and the dead-letter sink hold whatever they are given (generic in it; the
consumer needs only a message's topic, partition and offset), and the applier builds its
results with the constructor it is given (``MemoryApplier(WriteResult)``). mypy checks each
fake against its Protocol where they meet: ``mypy tests/replicator/test_testing.py`` assigns
every fake to its Protocol, and the roles' own tests inject them.

The writer's fakes take an optional ``journal`` (a list) and append to it, in order, the
acknowledgements DESIGN §4 invariant 4 orders: ``"dynamodb"`` (writes acknowledged),
``"dead-letter"`` (letters acknowledged), ``"commit"`` (offsets committed).
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, Literal, NamedTuple, Protocol, TypeVar

from replicator.control.memory import MemoryControlStore
from replicator.errors import BrokerUnavailable, ProbeError, SourceUnavailable
from replicator.mapping import VERSION_ATTR, ConditionalWrite, Item, is_tombstone
from replicator.phase.clock import FixedClock
from replicator.reader.checkpoint import Checkpoint
from replicator.reader.checks import REQUIRED_BINLOG
from replicator.reader.gtid import StartAt
from replicator.reader.items import Heartbeat, TxEnd
from replicator.reader.items import Item as BinlogItem
from replicator.reader.schema import Catalog

__all__ = [
    "ManualClock",
    "MemoryApplier",
    "MemoryBinlog",
    "MemoryBroker",
    "MemoryChangeSource",
    "MemoryControlStore",
    "MemoryDeadLetters",
    "MemoryDynamoDB",
    "MemoryEventConsumer",
    "MemoryEventSink",
    "MemoryOffsetProbe",
    "MemorySourceServer",
    "MemoryTableProbe",
    "Record",
]

Outcome = Literal["applied", "replayed", "rejected"]  # consumers.writer.applier.Outcome
FileOffset = tuple[str, int]


# --------------------------------------------------------------------------- time

class ManualClock(FixedClock):
    """A clock that moves only when told to: ``now()`` for the phase ``Clock``, the instance
    itself for the ``Callable[[], float]`` clocks (writer, heartbeat, throttle), and ``sleep``
    for injected sleeps: it records the delay and moves the clock by it."""

    def __init__(self, at: float = 0.0) -> None:
        super().__init__(at)
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.at

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


# --------------------------------------------------------------------------- the reader's ports

class MemoryChangeSource:
    """``ChangeSource``: yields ``items``, then a :class:`Heartbeat` every ``idle_s`` until closed.

    ``fail_after=n`` raises :class:`SourceUnavailable` after n items (a lost connection).
    ``close()`` (from any thread) ends the iteration at the next item.
    """

    def __init__(self, items: Iterable[BinlogItem], *, fail_after: int | None = None,
                 heartbeat_file: str = "binlog.000001", idle_s: float = 0.01) -> None:
        self._items, self._fail_after = items, fail_after
        self._file, self._idle_s = heartbeat_file, idle_s
        self.closed = threading.Event()

    def items(self) -> Iterator[BinlogItem]:
        for sent, item in enumerate(self._items):
            if self.closed.is_set():
                return
            if sent == self._fail_after:
                raise SourceUnavailable("connection lost (MemoryChangeSource fail_after)")
            self._file = item.file
            yield item
        while not self.closed.is_set():
            time.sleep(self._idle_s)
            yield Heartbeat(self._file)

    def close(self) -> None:
        self.closed.set()


class MemoryBinlog:
    """Whole transactions (each ending with a :class:`TxEnd`) that :meth:`open` streams from a
    file position on, skipping the transactions that end at or before it (a resume)."""

    def __init__(self, transactions: Iterable[Sequence[BinlogItem]] = ()) -> None:
        self.transactions: list[list[BinlogItem]] = []
        self._ends: list[FileOffset] = []
        for tx in transactions:
            self.append(tx)
        self.opened: list[StartAt] = []
        self._failures: deque[int] = deque()

    def append(self, transaction: Sequence[BinlogItem]) -> None:
        last = transaction[-1] if transaction else None
        if not isinstance(last, TxEnd):
            raise ValueError("a transaction of MemoryBinlog ends with its TxEnd")
        self.transactions.append(list(transaction))
        self._ends.append((last.file, last.next_offset))

    @property
    def end(self) -> FileOffset:
        """The position after the last transaction (where a caught-up reader checkpoints)."""
        if not self._ends:
            raise ValueError("the binlog is empty")
        return self._ends[-1]

    def fail_next_open_after(self, items: int) -> None:
        """The next source opened loses its connection after ``items`` items."""
        self._failures.append(items)

    def open(self, start: StartAt) -> MemoryChangeSource:
        """The ``SourceFactory``."""
        if start.gtid:
            raise ValueError("MemoryBinlog opens at a file position, not at a GTID set")
        self.opened.append(start)
        at = (start.file or "", start.offset or 0)
        items = [item for tx, end in zip(self.transactions, self._ends, strict=True) if end > at
                 for item in tx]
        first = self.transactions[0][0].file if self.transactions else "binlog.000001"
        return MemoryChangeSource(items, fail_after=self._failures.popleft() if self._failures else None,
                                  heartbeat_file=start.file or first)


class Record(NamedTuple):
    topic: str
    key: bytes
    value: bytes


class MemoryBroker:
    """Kafka as ``read_committed`` consumers see it: the records and checkpoints of committed
    transactions only. The ``CheckpointStore``; :meth:`sink` is the ``SinkFactory``.

    ``fail_commits=n`` makes the next n commits fail with :class:`BrokerUnavailable`, their
    transactions dropped (what a producer fenced or cut off mid-commit leaves).
    """

    def __init__(self, *, fail_commits: int = 0) -> None:
        self.records: list[Record] = []
        self.checkpoints: list[Checkpoint] = []
        self.fail_commits = fail_commits
        self.sinks: list[MemoryEventSink] = []
        self._lock = threading.Lock()

    def sink(self) -> MemoryEventSink:
        s = MemoryEventSink(self)
        self.sinks.append(s)
        return s

    def last_checkpoint(self) -> Checkpoint | None:
        with self._lock:
            return self.checkpoints[-1] if self.checkpoints else None

    def _commit(self, records: list[Record], checkpoint: Checkpoint) -> None:
        with self._lock:
            if self.fail_commits:
                self.fail_commits -= 1
                raise BrokerUnavailable("broker unavailable (MemoryBroker fail_commits)")
            self.records += records
            self.checkpoints.append(checkpoint)


class MemoryEventSink:
    """``EventSink`` of a :class:`MemoryBroker`: records become visible at ``commit`` only."""

    def __init__(self, broker: MemoryBroker) -> None:
        self._broker = broker
        self._open: list[Record] | None = None
        self.closed = False

    def begin(self) -> None:
        if self._open is not None:
            raise RuntimeError("begin() while a transaction is open")
        self._open = []

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        if self._open is None:
            raise RuntimeError("send() outside a transaction")
        self._open.append(Record(topic, key, value))

    def send_all(self, records: Sequence[tuple[str, bytes, bytes]]) -> int:
        for topic, key, value in records:
            self.send(topic, key, value)
        return sum(len(key) + len(value) for _, key, value in records)

    def commit(self, checkpoint: Checkpoint) -> None:
        if self._open is None:
            raise RuntimeError("commit() outside a transaction")
        records, self._open = self._open, None
        self._broker._commit(records, checkpoint)

    def abort(self) -> None:
        self._open = None

    def last_checkpoint(self) -> Checkpoint | None:
        return self._broker.last_checkpoint()

    def close(self) -> None:
        self._open = None
        self.closed = True


class MemorySourceServer:
    """``SourceServer`` with what the server would report; the defaults pass every start-up check."""

    def __init__(self, *, head: FileOffset = ("binlog.000001", 4), binlog_files: Sequence[str] | None = None,
                 variables: dict[str, str] | None = None, grants: Sequence[str] | None = None,
                 tables: Iterable[str] = (), without_primary_key: Iterable[str] = (),
                 foreign_keys: Iterable[tuple[str, str, str, str, str, str]] = (),
                 catalog: Catalog | None = None) -> None:
        self.position = head
        self.files = list(binlog_files) if binlog_files is not None else [head[0]]
        self.variables = dict(REQUIRED_BINLOG) if variables is None else dict(variables)
        self.grant_lines = list(grants) if grants is not None else [
            "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO `replicator`@`%`"]
        self.with_pk = set(tables)
        self.existing = self.with_pk | set(without_primary_key)
        self.constraints = list(foreign_keys)  # (db, table, constraint, parent db, parent table, rules)
        self.schema_catalog = catalog or Catalog()

    def binlog_variables(self) -> dict[str, str]:
        return dict(self.variables)

    def grants(self) -> list[str]:
        return list(self.grant_lines)

    def binlog_files(self) -> list[str]:
        return list(self.files)

    def head(self) -> FileOffset:
        return self.position

    def tables(self, mapped: set[str]) -> tuple[set[str], set[str]]:
        return self.existing & mapped, self.with_pk & mapped

    def foreign_keys(self, mapped: set[str]) -> list[tuple[str, str, str, str, str, str]]:
        existing = self.existing & mapped
        return [fk for fk in self.constraints if f"{fk[0]}.{fk[1]}" in existing]

    def catalog(self, mapped: set[str]) -> Catalog:
        return self.schema_catalog


# --------------------------------------------------------------------------- the writer's ports

class KafkaMessage(Protocol):
    """What :class:`MemoryEventConsumer` reads of a message (``consumers.writer.batch.RawMessage``)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...


M = TypeVar("M", bound=KafkaMessage)
L = TypeVar("L")
R = TypeVar("R")


class MemoryEventConsumer(Generic[M]):
    """``EventConsumer`` over a queue of messages; nothing is delivered while paused.

    ``committed`` holds the committed positions (next offset per partition);
    :meth:`redeliver_uncommitted` is what a restart or a rebalance does: every delivered
    message at or after its partition's committed position comes again, in order.
    """

    def __init__(self, messages: Iterable[M] = (), *, journal: list[str] | None = None) -> None:
        self.queue: list[M] = list(messages)
        self.delivered: list[M] = []
        self.committed: dict[tuple[str, int], int] = {}
        self.paused = False
        self.started = self.closed = False
        self._journal = journal

    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        self.closed = True

    def add(self, messages: Iterable[M]) -> None:
        self.queue.extend(messages)

    def poll_batch(self, max_messages: int, timeout: float) -> list[M]:
        if self.paused:
            return []
        out, self.queue = self.queue[:max_messages], self.queue[max_messages:]
        self.delivered += out
        return out

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        if not offsets:
            return
        if self._journal is not None:
            self._journal.append("commit")
        self.committed.update(offsets)

    def pause_all(self) -> None:
        self.paused = True

    def resume_all(self) -> None:
        self.paused = False

    def redeliver_uncommitted(self) -> None:
        again = [m for m in self.delivered if m.offset >= self.committed.get((m.topic, m.partition), 0)]
        self.queue = again + self.queue
        self.delivered = []


class MemoryDeadLetters(Generic[L]):
    """``DeadLetterSink`` keeping the letters; ``fail_sends=n`` fails the next n sends
    (:class:`BrokerUnavailable`, nothing kept)."""

    def __init__(self, *, journal: list[str] | None = None, fail_sends: int = 0) -> None:
        self.letters: list[L] = []
        self.fail_sends = fail_sends
        self.started = self.closed = False
        self._journal = journal

    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        self.closed = True

    def send(self, letters: Iterable[L]) -> None:
        if self.fail_sends:
            self.fail_sends -= 1
            raise BrokerUnavailable("broker unavailable (MemoryDeadLetters fail_sends)")
        if self._journal is not None:
            self._journal.append("dead-letter")
        self.letters.extend(letters)


ItemIdentity = tuple[str, tuple[tuple[str, str, Any], ...]]


def _identity(table: str, key: Item) -> ItemIdentity:
    """The (table, key) identity the writer coalesces on, from :class:`ConditionalWrite` itself."""
    return ConditionalWrite(table, key, key, 0, tombstone=False).identity


class MemoryDynamoDB:
    """DynamoDB tables as the pipeline writes them: whole-item puts under the version condition
    (``attribute_not_exists(_version) OR _version < :v``), so a lower or equal version never
    overwrites and a tombstone stays until a higher version replaces it."""

    def __init__(self) -> None:
        self._items: dict[ItemIdentity, Item] = {}
        self._lock = threading.Lock()

    def put(self, write: ConditionalWrite) -> bool:
        """Apply the write if its condition holds; ``False``: the stored version is not lower."""
        with self._lock:
            version = self._items.get(write.identity, {}).get(VERSION_ATTR)
            if version is not None and int(version["N"]) >= write.version:
                return False
            self._items[write.identity] = copy.deepcopy(write.item)
            return True

    def stored(self, table: str, key: Item) -> Item | None:
        """The stored item, tombstones included."""
        with self._lock:
            item = self._items.get(_identity(table, key))
            return copy.deepcopy(item) if item is not None else None

    def get(self, table: str, key: Item) -> Item | None:
        """The item as readers see it: ``None`` when absent or a tombstone."""
        item = self.stored(table, key)
        return None if item is None or is_tombstone(item) else item

    def scan(self, table: str) -> list[Item]:
        """The live items of ``table`` (tombstones hidden), in write order."""
        with self._lock:
            items = [copy.deepcopy(item) for (t, _), item in self._items.items() if t == table]
        return [item for item in items if not is_tombstone(item)]


class MemoryApplier(Generic[R]):
    """The writer's ``Applier`` over a :class:`MemoryDynamoDB`, building each result with
    ``result(write, outcome, error)`` (``WriteResult``). Like the real applier it refuses to
    apply before ``start()``. ``reject(write)`` returns why DynamoDB would refuse a write
    (``""``: it would not)."""

    mode = "memory"
    concurrency = 1

    def __init__(self, result: Callable[[ConditionalWrite, Outcome, str], R],
                 db: MemoryDynamoDB | None = None, *, reject: Callable[[ConditionalWrite], str] | None = None,
                 journal: list[str] | None = None) -> None:
        self.db = db if db is not None else MemoryDynamoDB()
        self.pending = 0  # apply() acknowledges before it returns: never a backlog
        self.batches: list[list[ConditionalWrite]] = []
        self.started = self.closed = False
        self._result, self._reject, self._journal = result, reject, journal

    def start(self) -> None:
        self.started = True

    def close(self) -> None:
        self.closed = True

    def apply(self, writes: list[ConditionalWrite]) -> list[R]:
        if not writes:
            return []
        if not self.started or self.closed:
            raise RuntimeError("MemoryApplier.apply() before start() or after close()")
        self.batches.append(list(writes))
        results = [self._one(w) for w in writes]
        if self._journal is not None:
            self._journal.append("dynamodb")
        return results

    def _one(self, write: ConditionalWrite) -> R:
        why = self._reject(write) if self._reject is not None else ""
        if why:
            return self._result(write, "rejected", why)
        return self._result(write, "applied" if self.db.put(write) else "replayed", "")


# --------------------------------------------------------------------------- the phase probes

class MemoryTableProbe:
    """``TableProbe``: the DynamoDB tables in ``existing`` exist, no other does."""

    def __init__(self, existing: Iterable[str]) -> None:
        self.existing = set(existing)

    def missing_tables(self, tables: Sequence[str]) -> list[str]:
        return [t for t in tables if t not in self.existing]


class MemoryOffsetProbe:
    """``OffsetProbe``: ``lags`` per topic (0 when absent), or :class:`ProbeError` with ``error``;
    ``asked`` records each (group, topics) question."""

    def __init__(self, lags: dict[str, int] | None = None, error: str = "") -> None:
        self.lags = lags or {}
        self.error = error
        self.asked: list[tuple[str, list[str]]] = []

    def topic_lags(self, group: str, topics: Sequence[str]) -> dict[str, int]:
        self.asked.append((group, list(topics)))
        if self.error:
            raise ProbeError(self.error)
        return {t: self.lags.get(t, 0) for t in topics}

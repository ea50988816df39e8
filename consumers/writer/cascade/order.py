"""When a cascade may run: after every earlier change of the tables it reaches, before any later one.

A parent change and its children's earlier changes travel in different partitions (Kafka keys are
primary keys), so the writer can consume a parent's delete before a child's insert that preceded it
in the binlog; a cascade run then would miss the child. And a child change after the cascade (a
child inserted under the re-inserted parent) must not be applied before it, or the cascade would
find it and could not tell which rows it had reached. :class:`CascadeOrder` sits between the
consumer and :meth:`Writer.apply_batch <consumers.writer.runner.Writer.apply_batch>`:

- messages of tables outside the cascade family (parents and children of cascading foreign
  keys) pass straight through;
- the family's messages are applied in version (binlog) order across partitions; a **trigger**
  (a parent's delete, or an update of referenced columns) is applied and its cascade pending;
  while cascades are pending, messages of a higher version wait if their table is a descendant
  of a pending trigger's table that has cascading children itself (its later changes would hide
  what the cascade must reach); others (leaf children, other tables) go on: the cascade's writes
  are conditional on the parent's version, so a later change of theirs wins either way;
- a trigger's cascade runs once every partition of the family has delivered a message of a
  higher version (versions increase along a partition) or has been consumed up to its end
  offset read after the trigger was consumed (the reader commits its transactions in binlog
  order, so every earlier change is then consumed, and applied); family messages with a higher
  version wait in memory meanwhile (:attr:`held`);
- committed offsets and the applied watermark never pass a held message, a pending trigger, or
  snapshot rows whose cascade records are still to be read: a kill -9 re-delivers them, and the
  version conditions make the replay harmless;
- snapshot events (:func:`out_of_band`: snapshot rows, and the deletes of the backfill's absence
  sweep and of ``reconcile --repair``) carry the version of the snapshot that read them, older than
  stream changes before them in their partition: they never wait, never count as their partition
  passing a version, and a snapshot delete is never half of a primary-key update.

A primary-key update of a parent is a delete of the old key and an insert of the new one at
versions V and V+1 (DESIGN §3.1, ``events.binlog_version``); the insert is looked up by version
so that ``ON UPDATE`` rules apply, not ``ON DELETE``. A parent insert is not committed before every
family partition has passed its version (and a delete just below it, if any, has cascaded): a
restart must see both
halves again.

Partitions of the family assigned to other writer members count as consumed once the group's
committed offset reaches the end offset; a barrier not reached within ``barrier_timeout_s``
(possible only with several members) runs the cascade anyway, logged and counted.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import structlog

from consumers.writer.batch import RawMessage
from consumers.writer.cascade.executor import CascadeExecutor
from replicator.errors import BrokerUnavailable, ReplicatorError
from replicator.events import ChangeEvent, Row
from replicator.mapping.foreign_keys import CascadeGraph, action_for

log = structlog.get_logger("consumers.writer.cascade")

TP = tuple[str, int]
#: Inserts of parent tables remembered to pair a primary-key update's delete with its insert.
PAIRS_KEPT = 100_000


@runtime_checkable
class OffsetView(Protocol):
    """What the order needs of the consumer (:class:`consumers.writer.kafka.KafkaEventConsumer`)."""

    def rebalances(self) -> int: ...
    def assignment(self) -> list[TP]: ...
    def positions(self, partitions: list[TP]) -> dict[TP, int]: ...
    def end_offsets(self, partitions: list[TP]) -> dict[TP, int]: ...
    def committed(self, partitions: list[TP], timeout: float = 10) -> dict[TP, int]: ...
    def partitions_of(self, topics: list[str]) -> list[TP]: ...


def out_of_band(event: ChangeEvent) -> bool:
    """Events versioned by a snapshot's position, not by their place in the binlog: snapshot rows,
    and the deletes of rows a snapshot found gone (the backfill's absence sweep, ``reconcile
    --repair``). They arrive after later stream changes of their partition, so they say nothing about
    how far it is consumed, and a delete of them is no primary-key update's half."""
    return event.op == "r" or event.tx.id.startswith(("snapshot:", "repair:"))


@dataclass
class _Msg:
    msg: RawMessage
    event: ChangeEvent | None  # None: undecodable (the writer dead-letters it)

    @property
    def tp(self) -> TP:
        return self.msg.topic, self.msg.partition


@dataclass
class _Trigger:
    item: _Msg
    since: float
    ends: dict[TP, int] | None = None  # read when the versions seen do not settle it
    after: Row | None = None  # the new row of a primary-key update (found by version)

    @property
    def version(self) -> int:
        assert self.item.event is not None
        return self.item.event.version

    @property
    def table(self) -> str:
        assert self.item.event is not None
        return self.item.event.source


@dataclass
class OrderStats:
    runs: int = 0  # groups of cascades run together
    cascades: int = 0
    applied: int = 0
    barrier_timeouts: int = 0
    held_max: int = 0
    waits: list[float] = field(default_factory=list)


class CascadeOrder:
    """See the module docstring. ``topics``: topic -> source table of every mapped table."""

    def __init__(self, graph: CascadeGraph, executor: CascadeExecutor, topics: Mapping[str, str],
                 view: OffsetView, commit: Callable[[dict[TP, int]], None], *,
                 barrier_timeout_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 decode: Callable[[bytes], ChangeEvent] = ChangeEvent.from_json,
                 on_barrier_timeout: Callable[[], None] | None = None) -> None:
        self.graph = graph
        self.executor = executor
        self.family_topics = {t: s for t, s in topics.items() if s in graph.family}
        self.view = view
        self._commit = commit
        self.barrier_timeout_s = barrier_timeout_s
        self._clock = clock
        self._wall = wall
        self._decode = decode
        self._on_barrier_timeout = on_barrier_timeout or (lambda: None)
        self.held: dict[TP, deque[_Msg]] = {}
        self.pending: list[_Trigger] = []  # sorted by version
        self._snapshots_open: dict[TP, int] = {}  # snapshot rows applied, records not read yet
        self._applied_next: dict[TP, int] = {}
        self._inserts: OrderedDict[tuple[str, int], Row] = OrderedDict()
        self._seen: dict[TP, int] = {}  # the highest version consumed per family partition
        self._partitions: list[TP] = []
        self._partitions_at = -1e9
        self._committed_at = -1e9
        self._committed: dict[TP, int] = {}
        self._rebalances = view.rebalances()
        self._step_ends: dict[TP, int] | None = None
        self._pairs: list[_Trigger] = []  # parent inserts a delete of the same version may still pair with
        self._step_positions: tuple[set[TP], dict[TP, int]] | None = None
        self._strict_cache: dict[str, frozenset[str]] = {}
        self._waiting_for: frozenset[str] | None = None  # _waiting(); None whenever pending changes
        self.stats = OrderStats()

    # ----------------------------------------------------------------- the writer's side

    def cap(self, offsets: Mapping[TP, int]) -> dict[TP, int]:
        """``offsets`` (next offsets to commit) held back to what is completely applied."""
        out = {}
        for tp, offset in offsets.items():
            limit = self._limit(tp)
            out[tp] = offset if limit is None else min(offset, limit)
        return out

    def _limit(self, tp: TP) -> int | None:
        limits = [t.item.msg.offset for t in self.pending if t.item.tp == tp]
        queue = self.held.get(tp)
        if queue:
            limits.append(queue[0].msg.offset)
        if tp in self._snapshots_open:
            limits.append(self._snapshots_open[tp])
        limits += [p.item.msg.offset for p in self._pairs if p.item.tp == tp]
        return min(limits) if limits else None

    def step(self, messages: list[RawMessage], apply: Callable[[list[RawMessage]], Any]) -> None:
        """Take one poll's messages; apply what may be applied; run the cascades that may run."""
        self._after_rebalance()
        self._step_ends = None
        self._step_positions = None
        passing = []
        for m in messages:
            if m.topic not in self.family_topics:
                passing.append(m)
                continue
            item = _Msg(m, self._decoded(m))
            self.held.setdefault(item.tp, deque()).append(item)
            event = item.event
            if event is not None and not out_of_band(event):  # snapshot events carry old versions
                self._seen[item.tp] = max(self._seen.get(item.tp, -1), event.version)
            if event is not None and event.op == "c" and event.source in self.graph.parents:
                self._inserts[(event.source, event.version)] = event.row
                if len(self._inserts) > PAIRS_KEPT:
                    self._inserts.popitem(last=False)
                # Not committed before its delete, if it has one, is known: a restart would forget it.
                self._pairs.append(_Trigger(item, self._clock()))
        if passing:
            apply(passing)
        self.stats.held_max = max(self.stats.held_max, sum(len(q) for q in self.held.values()))
        while True:
            segment = self._release()
            if segment:
                self._apply(segment, apply)
                continue
            ready = self._ready()
            if not ready:
                self._settle_pairs()
                return
            self._run(ready)

    def _settle_pairs(self) -> None:
        """Parent inserts whose version every family partition has passed: a delete at that version
        (a primary-key update's other half) is then pending, or there is none."""
        if not self._pairs:
            return
        # Deletes not cascaded yet: pending, or held back (polled, not yet released).
        pending = {t.version for t in self.pending} | {
            m.event.version for q in self.held.values() for m in q
            if m.event is not None and m.event.op == "d"}
        settled: set[TP] = set()
        while self._pairs:
            pair = self._pairs[0]
            if pair.version - 1 in pending or not self._barrier_reached(pair, quiet=True):
                break
            self._pairs.pop(0)
            settled.add(pair.item.tp)
        if settled:
            self._commit(self.cap({tp: self._applied_next[tp] for tp in settled if tp in self._applied_next}))

    def _decoded(self, m: RawMessage) -> ChangeEvent | None:
        if m.value is None:
            return None
        try:
            return self._decode(m.value)
        except (ReplicatorError, ValueError):
            return None

    def _after_rebalance(self) -> None:
        """After partitions were revoked or assigned, consumption restarts from the committed offsets,
        which never pass a held message or a pending trigger: start over from there."""
        count = self.view.rebalances()
        if count == self._rebalances:
            return
        self._rebalances = count
        if self.held or self.pending:
            log.info("cascade_order_restarted", reason="partitions reassigned", pending=len(self.pending),
                     held=sum(len(q) for q in self.held.values()))
        self.held.clear()
        self.pending.clear()
        self._waiting_for = None
        self._pairs.clear()
        self._snapshots_open.clear()
        self._applied_next.clear()
        self._seen.clear()
        self._committed.clear()
        self._partitions_at = -1e9

    # ----------------------------------------------------------------- release in version order

    def _is_trigger(self, event: ChangeEvent) -> bool:
        if event.op not in ("d", "u") or event.source not in self.graph.parents or event.before is None:
            return False
        for fk in self.graph.children_of(event.source):
            if event.op == "u" and action_for(fk, event.before, event.after) is not None:
                return True
            if event.op == "d" and (action_for(fk, event.before, None) is not None
                                    or fk.on_update in ("CASCADE", "SET NULL")):
                return True
        return False

    def _strict(self, table: str) -> frozenset[str]:
        """Descendants of ``table`` whose later changes must wait for its cascades."""
        found = self._strict_cache.get(table)
        if found is None:
            found = self._strict_cache[table] = self.graph.descendants(table) & self.graph.parents
        return found

    def _release(self) -> list[_Msg]:
        """The family messages that may be applied now, in version order; triggers among them pending."""
        out: list[_Msg] = []
        while True:
            head = self._lowest()
            if head is None:
                return out
            self.held[head.tp].popleft()
            if not self.held[head.tp]:
                del self.held[head.tp]
            out.append(head)
            if head.event is not None and self._is_trigger(head.event):
                self._add_trigger(head)

    def _lowest(self) -> _Msg | None:
        """The lowest-version partition head that may be applied now."""
        bound = self.pending[0].version if self.pending else None
        waiting = self._waiting()
        best: _Msg | None = None
        for queue in self.held.values():
            head = queue[0]
            if head.event is None:
                return head  # undecodable: nothing to order; the writer dead-letters it now
            # A snapshot event waits for nothing (its version says nothing of its place in the queue,
            # and in-band changes behind it may be what a pending cascade waits for): a snapshot row
            # is checked against the cascade records, a snapshot delete cascades itself.
            if (bound is not None and head.event.version >= bound and head.event.source in waiting
                    and not out_of_band(head.event)):
                continue
            if best is None or (best.event is not None and head.event.version < best.event.version):
                best = head
        return best

    def _waiting(self) -> frozenset[str]:
        """The tables whose later messages wait for the pending cascades (kept while ``pending`` is
        unchanged: with hundreds of triggers pending, this union per released message cost more CPU
        than the rest of the release)."""
        if self._waiting_for is None:
            tables = {t.table for t in self.pending}
            self._waiting_for = frozenset().union(*(self._strict(t) for t in tables))
        return self._waiting_for

    def _add_trigger(self, item: _Msg) -> None:
        trigger = _Trigger(item, self._clock())
        self.pending.append(trigger)
        self.pending.sort(key=lambda t: t.version)
        self._waiting_for = None

    def _apply(self, segment: list[_Msg], apply: Callable[[list[RawMessage]], Any]) -> None:
        snapshots = [s for s in segment if s.event is not None and s.event.op == "r"
                     and self.graph.of_child(s.event.source)]
        for s in snapshots:
            self._snapshots_open.setdefault(s.tp, s.msg.offset)
        apply([s.msg for s in segment])
        for s in segment:
            self._applied_next[s.tp] = max(self._applied_next.get(s.tp, 0), s.msg.offset + 1)
            if s.event is not None and s.event.op != "d":  # what a lagging GSI may not show yet
                self.executor.note_written(s.event.source, s.event.after)
        if snapshots:
            self.executor.snapshot_rows([s.event for s in snapshots if s.event is not None], self._wall())
            opened = {s.tp for s in snapshots}
            for tp in opened:
                self._snapshots_open.pop(tp, None)
            self._commit(self.cap({tp: self._applied_next[tp] for tp in opened}))

    # ----------------------------------------------------------------- the barrier and the cascade

    def _family_partitions(self) -> list[TP]:
        now = self._clock()
        if now - self._partitions_at >= 30.0:
            self._partitions = self.view.partitions_of(sorted(self.family_topics))
            self._partitions_at = now
        return self._partitions

    def _barrier_reached(self, trigger: _Trigger, quiet: bool = False) -> bool:
        # Past it: a higher version delivered (an insert half one above may follow in the same partition).
        open_ = [tp for tp in self._family_partitions() if self._seen.get(tp, -1) <= trigger.version]
        if not open_:
            return True
        if trigger.ends is None:
            # One read per step serves every trigger consumed before it (all of this step's are).
            if self._step_ends is None:
                self._step_ends = self.view.end_offsets(self._family_partitions())
            trigger.ends = self._step_ends
        ends: dict[TP, int] = trigger.ends
        if self._step_positions is None:  # nothing is polled within a step: once per step
            mine_now = set(self.view.assignment())
            family = sorted(mine_now & set(self._family_partitions()))
            self._step_positions = (mine_now, self.view.positions(family))
        mine, positions = self._step_positions
        own = [tp for tp in open_ if tp in mine and tp in ends]
        behind = [tp for tp in own if 0 <= positions.get(tp, -1) < ends[tp]]
        # Partitions of other members, and own ones not consumed from yet: the group's commits.
        others = [tp for tp in open_ if (tp not in mine or positions.get(tp, -1) < 0) and ends.get(tp, 0) > 0]
        if others and not behind:
            now = self._clock()
            if now - self._committed_at >= 0.5:
                self._committed_at = now
                try:
                    self._committed.update(self.view.committed(others))
                except BrokerUnavailable as exc:
                    log.warning("cascade_barrier_offsets_unread", error=str(exc))
            behind = [tp for tp in others if self._committed.get(tp, -1) < ends[tp]]
        if not behind:
            return True
        if self._clock() - trigger.since < self.barrier_timeout_s:
            return False
        if quiet:
            return True
        self.stats.barrier_timeouts += 1
        self._on_barrier_timeout()
        log.warning("cascade_barrier_timeout", marker="DualWrite",
                    cascade={"table": trigger.item.event.source if trigger.item.event else "?",
                             "version": trigger.version},
                    behind=[f"{t}[{p}]" for t, p in behind[:10]], waited_s=self.barrier_timeout_s,
                    hint="partitions of the cascade's tables are consumed by another writer that is "
                         "behind or stopped; the cascade runs now and may miss their earlier changes")
        return True

    def _ready(self) -> list[_Trigger]:
        """The pending triggers that may run now: a prefix whose barriers are reached, below every held
        message (a held message must be applied between two cascades around it)."""
        held = [q[0].event.version for q in self.held.values() if q[0].event is not None]
        below = min(held) if held else None
        ready: list[_Trigger] = []
        for trigger in self.pending:
            if (below is not None and trigger.version >= below) or not self._barrier_reached(trigger):
                break
            ready.append(trigger)
        return ready

    def _run(self, triggers: list[_Trigger]) -> None:
        changes = []
        for trigger in triggers:
            event = trigger.item.event
            assert event is not None and event.before is not None
            after = event.after
            if event.op == "d" and not out_of_band(event):
                # A primary-key update's new row: its insert half is one version above (binlog_version).
                after = self._inserts.get((event.source, event.version + 1))
            changes.append((event.source, event.before, after, event.version))
            self.stats.waits.append(self._clock() - trigger.since)
        together = self.executor.cascade_many(changes, self._wall()) if len(changes) > 1 else None
        if together is not None:
            self.stats.applied += together.applied
        else:
            for change in changes:
                self.stats.applied += self.executor.cascade(*change, self._wall()).applied
        self.stats.cascades += len(triggers)
        self.stats.runs += 1
        done = {id(t) for t in triggers}
        self.pending = [t for t in self.pending if id(t) not in done]
        self._waiting_for = None
        tps = {t.item.tp for t in triggers}
        self._commit(self.cap({tp: self._applied_next[tp] for tp in tps if tp in self._applied_next}))

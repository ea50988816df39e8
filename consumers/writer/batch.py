"""One consumed batch -> the writes to send, the dead letters, and the offsets it covers.

Pure: no clients. Events of one item within a batch are coalesced to the last one (the
highest version: within a partition that is the last by offset), so a hot key costs one
DynamoDB write per batch. Per-item order across batches holds because the writer finishes
(and commits) a batch before it starts the next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from replicator.errors import ConfigError, MappingError
from replicator.events import ChangeEvent
from replicator.mapping import ConditionalWrite, TableMapper, writes_for_event
from replicator.mapping.embedded import EmbeddedMapper
from replicator.settings import Settings, TableMapping

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class RawMessage:
    """What the writer needs of one Kafka message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event that cannot be applied, with why (DESIGN §3.2: never silently dropped)."""

    message: RawMessage
    error_type: str
    error: str
    table: str
    key: str
    reason: str
    version: int | None = None


@dataclass
class BatchPlan:
    writes: list[ConditionalWrite] = field(default_factory=list)  # distinct items, latest version each
    dead_letters: list[DeadLetter] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)  # next offset to commit
    events: int = 0
    coalesced: int = 0  # writes saved by coalescing
    origin: dict[tuple[str, Any], RawMessage] = field(default_factory=dict)  # write identity -> message
    oldest_ts_ms: int | None = None  # the earliest MySQL commit time among the batch's events

    def message_of(self, write: ConditionalWrite) -> RawMessage:
        return self.origin[write.identity]


class MapperCache:
    """One :class:`TableMapper` per (table, schema fingerprint), validated when first built."""

    def __init__(self, settings: Settings, primary_keys: dict[str, tuple[str, ...]] | None = None,
                 parents: dict[str, TableMapper] | None = None) -> None:
        self._tables = {t.source: t for t in settings.tables}
        # Primary-key column order from information_schema (start-up), which decides hash vs
        # range of a two-column default key; the event's pk object is only trusted for the set.
        self._primary_keys = primary_keys or {}
        # The mappers of the tables that others are embedded in, at the start-up schema: a
        # child event renders its parent's item key with them.
        self._parents = parents or {}
        self._prefix = settings.dynamodb.table_prefix
        self._mappers: dict[tuple[str, str], TableMapper | EmbeddedMapper] = {}

    def mapping(self, source: str) -> TableMapping | None:
        return self._tables.get(source)

    def target(self, mapping: TableMapping) -> str:
        """The DynamoDB table of a mapping's items (an embedded table's: its parent's)."""
        if mapping.embed is not None:
            mapping = self._tables[mapping.embed.parent]
        return self._prefix + mapping.target_name

    def mapper_for(self, event: ChangeEvent) -> TableMapper | EmbeddedMapper:
        """The mapper of the event's schema; a config that no longer fits it is a ConfigError."""
        cache_key = (event.source, event.schema)
        mapper = self._mappers.get(cache_key)
        if mapper is None:
            mapping = self._tables[event.source]
            known = self._primary_keys.get(event.source, ())
            primary = known if set(known) == set(event.pk) else tuple(event.pk)
            table_mapper = TableMapper(mapping, event.columns, primary)
            try:
                table_mapper.validate()
                mapper = table_mapper
                if mapping.embed is not None:
                    parent = self._parents.get(mapping.embed.parent)
                    if parent is None:
                        raise ConfigError(f"{event.source} is embedded in {mapping.embed.parent}, "
                                          f"whose schema the writer did not load at start-up")
                    mapper = EmbeddedMapper(table_mapper, parent)
                    mapper.validate()
            except ConfigError as exc:
                raise ConfigError(f"{exc} (schema {event.schema} of {event.source} as the reader saw it "
                                  f"at {event.pos.file}:{event.pos.offset})") from exc
            self._mappers[cache_key] = mapper
        return mapper


def _dead(msg: RawMessage, exc: MappingError, version: int | None = None) -> DeadLetter:
    return DeadLetter(msg, type(exc).__name__, str(exc), exc.table, exc.key, exc.reason, version)


def plan_batch(messages: Sequence[RawMessage], mappers: MapperCache, now: float, tombstone_ttl_s: int,
               decode: Callable[[bytes], ChangeEvent] = ChangeEvent.from_json) -> BatchPlan:
    """Decode, map and coalesce one batch (see the module docstring)."""
    plan = BatchPlan()
    latest: dict[tuple[str, Any], ConditionalWrite] = {}
    total_writes = 0
    for msg in messages:
        tp = (msg.topic, msg.partition)
        plan.offsets[tp] = max(plan.offsets.get(tp, 0), msg.offset + 1)
        plan.events += 1
        event: ChangeEvent | None = None
        try:
            if msg.value is None:
                raise MappingError("message without a value", reason="empty-message")
            event = decode(msg.value)
            if plan.oldest_ts_ms is None or event.ts_ms < plan.oldest_ts_ms:
                plan.oldest_ts_ms = event.ts_ms
            mapping = mappers.mapping(event.source)
            if mapping is None:
                raise MappingError(f"{event.source} is not a mapped table (tables[] of the config)",
                                   table=event.source, reason="unmapped-table")
            writes = writes_for_event(mappers.mapper_for(event), mappers.target(mapping), event,
                                      now, tombstone_ttl_s)
        except MappingError as exc:
            plan.dead_letters.append(_dead(msg, exc, event.version if event is not None else None))
            continue
        for w in writes:
            total_writes += 1
            ident = w.identity
            prior = latest.get(ident)
            if prior is None or w.version >= prior.version:
                latest[ident] = w
                plan.origin[ident] = msg
    plan.writes = list(latest.values())
    plan.coalesced = total_writes - len(plan.writes)
    return plan

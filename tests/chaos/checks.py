"""What a run checks once the pipeline has drained: the whole state, not a sample.

- **convergence**: MySQL against DynamoDB row for row through the mapping (the reconcile's
  readers and diff), until equal or a deadline; what still differs then is *lost* (a row or a
  change missing, a deleted row still there, a value behind);
- **versions**: every item's ``_version`` sampled through the run never went down (*regressed*).
  Phase 5 keeps this simple: the application's phase-5 writes carry a higher generation than
  every binlog version before them, and the switch back bumps it again, so ``_version`` rises
  across both switches too. The scans also count the phase-5 writes they saw (``_origin = app``);
- **topics**: each table topic read whole by a ``read_committed`` consumer: a change event
  (op c/u/d) seen twice with the same key and version is *duplicated*; one seen after a higher
  version of its key is out of order;
- **dead letters**: only for the rows too big to map, and each of those present there;
- **acknowledged writes**: MySQL holds what the application's acknowledged writes left
  (:mod:`tests.chaos.ledger`).
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from replicator.adapters.dynamodb import dynamodb_client
from replicator.backfill.source import SnapshotSource
from replicator.diff import Difference, describe, diff_tables
from replicator.errors import ReplicatorError
from replicator.mapping.mapper import TableMapper
from replicator.mapping.names import DELETED_ATTR, ORIGIN_APP, ORIGIN_ATTR, VERSION_ATTR
from replicator.mapping.size import MAX_ITEM_BYTES
from replicator.settings import Settings
from replicator.topics import dead_letter_topic, table_topic
from validators.reconcile import read_dynamodb, read_mysql, scan_items

SCAN_TIMEOUT_S = 60.0


@dataclass
class Comparison:
    rows: int = 0  # keys compared, both tables
    differences: list[Difference] = field(default_factory=list)
    oversized: set[int] = field(default_factory=set)  # ids of blobs rows too big for DynamoDB


def compare(settings: Settings) -> Comparison:
    """Every mapped table once; the blobs rows too big for an item are left out (dead letters)."""
    out = Comparison()
    client = dynamodb_client(settings.dynamodb)
    with SnapshotSource(settings.mysql) as src, contextlib.closing(client):
        for mapping in settings.tables:
            shape = src.table_shape(mapping.database, mapping.table)
            mapper = TableMapper(mapping, shape.columns, shape.pk)
            mysql = read_mysql(src, shape, mapper)
            if mapping.table == "blobs":
                big = {k for k, r in mysql.items() if _size(r.get("data")) > MAX_ITEM_BYTES - 1024}
                out.oversized |= {int(k.split("=", 1)[1]) for k in big}
                mysql = {k: r for k, r in mysql.items() if k not in big}
            dynamo, _ = read_dynamodb(client, settings.dynamodb.table_prefix + mapping.target_name, mapper)
            diffs = diff_tables(mapping.source, mysql, dynamo)
            out.rows += len(mysql.keys() | dynamo.keys())
            out.differences += diffs
    return out


def _size(value: object) -> int:
    return len(value) if isinstance(value, bytes | str) else 0


def converge(settings: Settings, deadline_s: float) -> Comparison:
    """Compare until the stores are equal or ``deadline_s`` has passed; the last comparison."""
    give_up = time.monotonic() + deadline_s
    while True:
        result = compare(settings)
        if not result.differences or time.monotonic() > give_up:
            return result
        time.sleep(2.0)


def short(diffs: list[Difference], n: int = 5) -> list[str]:
    return [describe(d)[:300] for d in diffs[:n]]


# --------------------------------------------------------------------------- versions


class VersionWatch:
    """Scans the tables every ``every_s`` (straight to DynamoDB Local, past the proxies) and
    records each item whose ``_version`` is lower than one seen before; ``app_writes`` are the
    phase-5 writes seen (an item's ``(key, _version)`` with ``_origin = app``), a lower bound."""

    def __init__(self, settings: Settings, every_s: float = 1.5) -> None:
        self.settings, self.every_s = settings, every_s
        self.highest: dict[tuple[str, str], int] = {}
        self.regressions: list[str] = []
        self.app_writes: set[tuple[tuple[str, str], int]] = set()
        self.scans = 0
        self.errors = 0
        self._client = dynamodb_client(settings.dynamodb)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="chaos-version-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        self.scan()  # the final state too
        self._client.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.scan()

    def scan(self) -> None:
        client = self._client
        for mapping in self.settings.tables:
            table = self.settings.dynamodb.table_prefix + mapping.target_name
            try:
                items = list(scan_items(client, table))
            except ReplicatorError:  # the table not there yet, or DynamoDB Local busy: the next scan
                self.errors += 1
                continue
            for item in items:
                key = (table, orjson.dumps({k: v for k, v in sorted(item.items()) if k == "id"}).decode())
                version = int(item.get(VERSION_ATTR, {}).get("N", "0"))
                before = self.highest.get(key, 0)
                if item.get(ORIGIN_ATTR, {}).get("S") == ORIGIN_APP:
                    self.app_writes.add((key, version))
                if version < before:
                    deleted = item.get(DELETED_ATTR, {}).get("BOOL", False)
                    self.regressions.append(f"{key}: _version {before} -> {version} (tombstone: {deleted})")
                else:
                    self.highest[key] = version
        self.scans += 1


# --------------------------------------------------------------------------- topics


def read_topic(settings: Settings, topic: str) -> list[Any]:
    """Every committed message of ``topic`` (read_committed), in partition order."""
    c = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                  "group.id": f"chaos-{uuid.uuid4().hex}",
                  "isolation.level": "read_committed", "enable.auto.commit": False,
                  "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    try:
        meta = c.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return []
        parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        c.assign(parts)
        pending = {p.partition for p in parts}
        out: list[Any] = []
        deadline = time.monotonic() + SCAN_TIMEOUT_S
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic}: partitions {sorted(pending)} not read to their end "
                                   f"in {SCAN_TIMEOUT_S:.0f} s")
            msg = c.poll(1.0)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                    continue
                raise RuntimeError(f"reading {topic}: {err}")
            out.append(msg)
        return out
    finally:
        c.close()


@dataclass
class TopicReport:
    events: int = 0
    duplicated: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    snapshot_repeats: int = 0  # op r rows published again by a restarted backfill chunk (harmless)


def check_topics(settings: Settings) -> TopicReport:
    report = TopicReport()
    for mapping in settings.tables:
        topic = table_topic(settings.kafka.topic_prefix, mapping.source)
        seen: Counter[tuple[bytes, int, str]] = Counter()
        last: dict[bytes, int] = {}
        for msg in read_topic(settings, topic):
            event = orjson.loads(msg.value())
            key, version, op = msg.key() or b"", int(event["version"]), str(event["op"])
            report.events += 1
            seen[(key, version, op)] += 1
            if op == "r":
                continue
            if seen[(key, version, op)] > 1:
                report.duplicated.append(f"{topic} key={key.decode(errors='replace')} v={version} op={op}")
            elif version < last.get(key, 0):
                report.out_of_order.append(f"{topic} key={key.decode(errors='replace')} v={version} "
                                           f"after v={last[key]}")
            last[key] = max(version, last.get(key, 0))
        report.snapshot_repeats += sum(n - 1 for (_, _, op), n in seen.items() if op == "r" and n > 1)
    return report


def dead_lettered_ids(settings: Settings) -> tuple[set[tuple[str, int]], int]:
    """(table, id) of every dead letter, and how many letters there were."""
    ids: set[tuple[str, int]] = set()
    msgs = read_topic(settings, dead_letter_topic(settings.kafka.topic_prefix))
    for msg in msgs:
        doc = orjson.loads(msg.value())
        original = doc.get("original_value")
        event = orjson.loads(base64.b64decode(original)) if original else {}
        pk = event.get("pk") or {}
        table = str(doc.get("error", {}).get("table") or event.get("table"))
        ids.add((table.rsplit(".", 1)[-1], int(pk.get("id", -1))))
    return ids, len(msgs)

"""The version generation in the backfill (docs/design.md): each chunk's rows carry the MySQL
generation of the fence row as the chunk's consistent snapshot sees it (0 without a fence
table). Each test has its own fence table, in its own database."""

from __future__ import annotations

import time
from typing import Any

import pytest
from confluent_kafka import Consumer

from replicator.backfill.runner import Backfill, BackfillOptions, TableProgress
from replicator.backfill.source import SnapshotSource
from replicator.catalog import TableShape
from replicator.events import ChangeEvent, snapshot_version, split_version
from replicator.fence import ensure_fence_table, update_fence_sql
from replicator.settings import Settings, load_settings
from replicator.topics import table_topic
from tests.conftest import admin_connect

pytestmark = pytest.mark.integration


def _settings(db: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("REPLICATOR_CUTOVER__FENCE_TABLE", f"{db}.fence")  # the environment wins
    return load_settings(tables=[{"source": f"{db}.items"}])


def _make_items(conn: Any, rows: int) -> None:
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id INT PRIMARY KEY, v INT)")
        cur.executemany("INSERT INTO items VALUES (%s, 0)", [(i,) for i in range(1, rows + 1)])


def _set_fence(conn: Any, db: str, writes_to: str, generation: int) -> None:
    with conn.cursor() as cur:
        cur.execute(update_fence_sql(f"{db}.fence"), (writes_to, generation))


def _events(settings: Settings, topic: str, expect: int, timeout_s: float = 30) -> list[ChangeEvent]:
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": f"{topic}.gen",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.subscribe([topic])
    events: list[ChangeEvent] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(events) < expect and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            value = msg.value() if msg is not None and msg.error() is None else None
            if value is not None:
                events.append(ChangeEvent.from_json(value))
    finally:
        consumer.close()
    return events


def test_each_chunk_carries_the_mysql_generation_of_the_fence_in_its_snapshot(
    mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str], kafka_cleanup: None, redis_client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _make_items(mysql_admin, 300)
    ensure_fence_table(mysql_admin, f"{mysql_db}.fence")
    _set_fence(mysql_admin, mysql_db, "mysql", 2)
    settings = _settings(mysql_db, monkeypatch)
    # Between chunks: 4 -> 5 (MySQL's generation stays 2), then 5 -> 4 (MySQL's generation is 4).
    after_chunk = {1: ("dynamodb", 3), 2: ("mysql", 4)}

    def flip(p: TableProgress) -> None:
        if p.chunks in after_chunk:
            _set_fence(mysql_admin, mysql_db, *after_chunk[p.chunks])

    opts = BackfillOptions(chunk_rows=100, max_rows_per_s=0, wait_for_writer=False)
    results = Backfill(settings, opts, on_progress=flip).run()
    assert [(p.done, p.chunks, p.complete) for p in results] == [(300, 3, True)]

    events = _events(settings, table_topic(settings.kafka.topic_prefix, f"{mysql_db}.items"), 300)
    assert len(events) == 300
    by_id = {int(e.pk["id"]): e for e in events}  # type: ignore[arg-type]
    assert {split_version(by_id[i].version)[0] for i in range(1, 101)} == {2}
    assert {split_version(by_id[i].version)[0] for i in range(101, 201)} == {2}
    assert {split_version(by_id[i].version)[0] for i in range(201, 301)} == {4}
    # the base is still the snapshot's binlog position
    e = by_id[250]
    assert split_version(e.version) == (4, snapshot_version(e.pos.file, e.pos.offset))


def _shape(src: SnapshotSource, db: str) -> TableShape:
    return src.table_shape(db, "items")


def test_a_missing_fence_table_is_generation_zero(
    mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    _make_items(mysql_admin, 3)
    settings = _settings(mysql_db, monkeypatch)
    with SnapshotSource(settings.mysql, fence_table=settings.cutover.fence_table) as src:
        chunk = src.read_chunk(_shape(src, mysql_db), None, 10)
    assert (len(chunk.rows), chunk.generation) == (3, 0)


def test_a_fence_pointing_at_dynamodb_versions_rows_with_the_previous_mysql_generation(
    mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    _make_items(mysql_admin, 3)
    ensure_fence_table(mysql_admin, f"{mysql_db}.fence")
    _set_fence(mysql_admin, mysql_db, "dynamodb", 7)
    settings = _settings(mysql_db, monkeypatch)
    with SnapshotSource(settings.mysql, fence_table=settings.cutover.fence_table) as src:
        assert src.read_chunk(_shape(src, mysql_db), None, 10).generation == 6


class _FlipsTheFenceMidChunk(SnapshotSource):
    """Commits a fence change from another connection after the chunk's snapshot began, just
    before the fence row is read in it."""

    def __init__(self, *args: Any, flip: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._flip = flip

    def _generation(self, cur: Any) -> int:
        self._flip()
        return super()._generation(cur)


def test_the_fence_row_is_read_in_the_chunks_consistent_snapshot(
    mysql_admin: Any, mysql_db: str, isolated_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    _make_items(mysql_admin, 3)
    ensure_fence_table(mysql_admin, f"{mysql_db}.fence")
    _set_fence(mysql_admin, mysql_db, "mysql", 2)
    settings = _settings(mysql_db, monkeypatch)
    other = admin_connect(isolated_env, mysql_db)
    try:
        def flip() -> None:
            _set_fence(other, mysql_db, "mysql", 4)

        fence = settings.cutover.fence_table
        with _FlipsTheFenceMidChunk(settings.mysql, fence_table=fence, flip=flip) as src:
            chunk = src.read_chunk(_shape(src, mysql_db), None, 10)
    finally:
        other.close()
    assert chunk.generation == 2, "the change committed after the snapshot began is not seen"

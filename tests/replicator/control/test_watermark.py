"""The applied watermark's pure rules and its reader over an in-memory control store."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from replicator.control import names
from replicator.control.watermark import (
    PipelineWatermark,
    WatermarkSnapshot,
    covers,
    offsets_from_doc,
    offsets_to_doc,
    parse_gtid_position,
)
from replicator.errors import ClientUsageError, ControlStoreUnavailable, UnknownTableError
from replicator.settings import Settings, load_settings
from replicator.testing import MemoryControlStore

USERS = "cdc.shop.users"
ORDERS = "cdc.shop.orders"


def reader_doc(gtid: str = "0-1-10", version: int = 1000,
               offsets: dict[str, int] | None = None) -> dict[str, Any]:
    parts = offsets if offsets is not None else {f"{USERS}:0": 5, f"{USERS}:1": -1}
    return {"ts": 1.0, "gtid_position": gtid, "version": version, "position": "bin.000001:1000",
            "offsets": parts}


def writer_doc(**offsets: int) -> dict[str, Any]:
    return {"ts": 1.0, "member": "m", "group": "g", "offsets": offsets}


def snapshot(reader: dict[str, Any] | None, *writers: dict[str, Any]) -> WatermarkSnapshot:
    markers = {names.writer_offsets_marker(f"w{i}"): w for i, w in enumerate(writers)}
    if reader is not None:
        markers[names.READER_WATERMARK] = reader
    return WatermarkSnapshot.from_markers(markers)


# --------------------------------------------------------------------------- GTID positions

def test_parse_gtid_position_reads_a_binlog_pos_and_a_single_gtid() -> None:
    assert parse_gtid_position("0-1-1234,1-2-77") == {0: 1234, 1: 77}
    assert parse_gtid_position(" 0-1-1234 ") == {0: 1234}
    assert parse_gtid_position("") == {}


@pytest.mark.parametrize("text", ["3e11fa47-71ca-11e1-9e33-c80aa9429562:23", "0-1", "a-b-c", "0-1-2;1-1-1"])
def test_parse_gtid_position_refuses_what_is_not_a_mariadb_position(text: str) -> None:
    with pytest.raises(ValueError, match="not a MariaDB GTID position"):
        parse_gtid_position(text)


def test_covers_needs_every_domain_of_the_target_at_or_past_its_sequence() -> None:
    assert covers("0-1-10,1-2-7", "0-1-10")
    assert covers("0-1-10,1-2-7", "1-3-7,0-1-9")  # the server id of a GTID does not matter
    assert not covers("0-1-10", "0-1-11")
    assert not covers("0-1-10", "0-1-5,1-2-1"), "a domain the position has not seen"
    assert covers("", "")


def test_offsets_round_trip_through_the_marker_form() -> None:
    offsets = {("cdc.a.b", 0): 3, ("cdc.a.b", 11): -1}
    assert offsets_to_doc(offsets) == {"cdc.a.b:0": 3, "cdc.a.b:11": -1}
    assert offsets_from_doc(offsets_to_doc(offsets)) == offsets


# --------------------------------------------------------------------------- the rule

def test_not_applied_without_a_reader_marker() -> None:
    assert not snapshot(None, writer_doc(**{f"{USERS}:0": 100})).applied_through([USERS], gtid={0: 1})


def test_applied_when_the_reader_covers_the_gtid_and_writers_passed_every_last_data_offset() -> None:
    snap = snapshot(reader_doc(), writer_doc(**{f"{USERS}:0": 6}))
    assert snap.applied_through([USERS], gtid={0: 10})


def test_not_applied_while_a_writer_has_not_passed_the_last_data_offset() -> None:
    snap = snapshot(reader_doc(), writer_doc(**{f"{USERS}:0": 5}))  # next offset 5: record 5 not applied
    assert not snap.applied_through([USERS], gtid={0: 10})
    assert snap.behind([USERS]) == {(USERS, 0): (5, 5)}


def test_not_applied_when_the_reader_has_not_reached_the_gtid() -> None:
    snap = snapshot(reader_doc(gtid="0-1-10"), writer_doc(**{f"{USERS}:0": 6}))
    assert not snap.applied_through([USERS], gtid={0: 11})
    assert not snap.applied_through([USERS], gtid={0: 1, 5: 1})


def test_the_largest_offset_over_writer_members_counts() -> None:
    snap = snapshot(reader_doc(), writer_doc(**{f"{USERS}:0": 2}), writer_doc(**{f"{USERS}:0": 9}))
    assert snap.applied_through([USERS], gtid={0: 10})


def test_a_partition_without_data_needs_no_writer() -> None:
    snap = snapshot(reader_doc(offsets={f"{USERS}:0": -1, f"{USERS}:1": -1}))
    assert snap.applied_through([USERS], gtid={0: 10})


def test_a_topic_the_reader_does_not_list_is_not_applied() -> None:
    snap = snapshot(reader_doc(), writer_doc(**{f"{USERS}:0": 6, f"{ORDERS}:0": 100}))
    assert not snap.applied_through([USERS, ORDERS], gtid={0: 10})
    assert snap.behind([ORDERS]) == {(ORDERS, -1): (-1, None)}


def test_an_unlisted_partition_of_a_listed_topic_is_applied() -> None:
    unlisted_1 = reader_doc(offsets={f"{USERS}:0": 5})
    snap = snapshot(unlisted_1, writer_doc(**{f"{USERS}:0": 6}))
    assert snap.applied_through([USERS], gtid={0: 10})


def test_a_version_target_is_compared_with_the_readers_version() -> None:
    snap = snapshot(reader_doc(version=1000), writer_doc(**{f"{USERS}:0": 6}))
    assert snap.applied_through([USERS], version=1000)
    assert not snap.applied_through([USERS], version=1001)


def test_a_malformed_marker_is_ignored() -> None:
    snap = snapshot({"gtid_position": "0-1-10"}, {"offsets": {"no-partition": 1}})
    assert snap.reader is None and snap.applied == {}


def test_a_mysql_readers_position_covers_no_gtid_target() -> None:
    mysql = "3e11fa47-71ca-11e1-9e33-c80aa9429562:23"
    snap = snapshot(reader_doc(gtid=mysql), writer_doc(**{f"{USERS}:0": 6}))
    assert not snap.applied_through([USERS], gtid={0: 1})
    assert snap.applied_through([USERS], version=1000)


# --------------------------------------------------------------------------- on a store

@pytest.fixture()
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("REPLICATOR_KAFKA__TOPIC_PREFIX", "cdc")  # the topics the docs above name
    return load_settings(tables=[{"source": "shop.users"}, {"source": "shop.orders"}])


def test_applied_through_reads_the_markers_of_the_store(settings: Settings) -> None:
    store = MemoryControlStore()
    wm = PipelineWatermark(store, settings)
    assert not wm.applied_through(["shop.users"], gtid="0-1-10")
    store.put_marker(names.READER_WATERMARK, reader_doc())
    store.put_marker(names.writer_offsets_marker("a"), writer_doc(**{f"{USERS}:0": 6}))
    assert wm.applied_through(["shop.users"], gtid="0-1-10")
    assert not wm.applied_through(["shop.users", "shop.orders"], gtid="0-1-10")


def test_wait_applied_returns_false_at_its_deadline(settings: Settings) -> None:
    wm = PipelineWatermark(MemoryControlStore(), settings)
    started = time.monotonic()
    assert not wm.wait_applied(["shop.users"], gtid="0-1-1", timeout_s=0.3)
    assert 0.3 <= time.monotonic() - started < 2.0


def test_wait_applied_returns_true_once_the_markers_arrive(settings: Settings) -> None:
    store = MemoryControlStore()
    wm = PipelineWatermark(store, settings)

    def publish() -> None:
        store.put_marker(names.writer_offsets_marker("a"), writer_doc(**{f"{USERS}:0": 6}))
        store.put_marker(names.READER_WATERMARK, reader_doc())

    timer = threading.Timer(0.2, publish)
    timer.start()
    try:
        assert wm.wait_applied(["shop.users"], gtid="0-1-10", timeout_s=10)
    finally:
        timer.cancel()


def test_wait_applied_stops_when_told(settings: Settings) -> None:
    stop = threading.Event()
    stop.set()
    started = time.monotonic()
    assert not PipelineWatermark(MemoryControlStore(), settings).wait_applied(
        ["shop.users"], gtid="0-1-1", timeout_s=10, stop=stop)
    assert time.monotonic() - started < 1.0


class DownStore(MemoryControlStore):
    def list_markers(self, prefix: str) -> dict[str, dict[str, Any]]:
        raise ControlStoreUnavailable("down")


def test_wait_applied_waits_out_a_store_that_is_down(settings: Settings) -> None:
    wm = PipelineWatermark(DownStore(), settings)
    assert not wm.wait_applied(["shop.users"], gtid="0-1-1", timeout_s=0.1)
    with pytest.raises(ControlStoreUnavailable):
        wm.applied_through(["shop.users"], gtid="0-1-1")


def test_wrong_questions_are_usage_errors(settings: Settings) -> None:
    wm = PipelineWatermark(MemoryControlStore(), settings)
    with pytest.raises(UnknownTableError, match=r"shop\.nope"):
        wm.applied_through(["shop.nope"], gtid="0-1-1")
    with pytest.raises(ClientUsageError, match="needs a target"):
        wm.applied_through(["shop.users"])
    with pytest.raises(ClientUsageError, match="version="):
        wm.applied_through(["shop.users"], gtid="3e11fa47-71ca-11e1-9e33-c80aa9429562:23")
    with pytest.raises(ClientUsageError, match="list of tables"):
        wm.applied_through("shop.users", gtid="0-1-1")

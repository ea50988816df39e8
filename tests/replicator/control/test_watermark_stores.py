"""The applied watermark read from each real control-store backend in one listing."""

from __future__ import annotations

import pytest

from replicator.control import ControlStore, names
from replicator.control.watermark import PipelineWatermark
from replicator.settings import load_settings
from replicator.topics import table_topic

pytestmark = pytest.mark.integration


def test_applied_through_reads_the_reader_and_every_writer_marker_of_the_backend(store: ControlStore) -> None:
    mapping = load_settings(tables=[{"source": "shop.users"}])
    topic = table_topic(mapping.kafka.topic_prefix, "shop.users")
    wm = PipelineWatermark(store, mapping)
    store.put_marker(names.READER_WATERMARK, {"ts": 1.0, "gtid_position": "0-1-10", "version": 7,
                                              "position": "bin.000001:7",
                                              "offsets": {f"{topic}:0": 5, f"{topic}:1": 3}})
    store.put_marker(names.writer_offsets_marker("a"), {"ts": 1.0, "offsets": {f"{topic}:0": 6}})
    store.put_marker(names.backfill_marker("shop.users"), {"complete": True})  # another prefix: not read
    assert not wm.applied_through(["shop.users"], gtid="0-1-10")
    store.put_marker(names.writer_offsets_marker("b"), {"ts": 1.0, "offsets": {f"{topic}:1": 4}})
    assert wm.applied_through(["shop.users"], gtid="0-1-10")
    assert sorted(store.list_markers(names.WATERMARK_PREFIX)) == [
        names.READER_WATERMARK, names.writer_offsets_marker("a"), names.writer_offsets_marker("b")]

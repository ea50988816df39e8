"""Shard lineage and the checkpoint document (pure; no stack)."""

from __future__ import annotations

import pytest

from consumers.reverse.shards import Checkpoint, Shard, parse_shards, readable
from replicator.errors import CorruptCheckpointError


def test_a_child_shard_is_readable_only_once_its_parent_is_finished() -> None:
    tree = [Shard("root", closed=True), Shard("a", "root", closed=True), Shard("b", "root"), Shard("a1", "a")]
    assert [s.id for s in readable(tree, [])] == ["root"]
    assert [s.id for s in readable(tree, ["root"])] == ["a", "b"]
    assert [s.id for s in readable(tree, ["root", "a"])] == ["b", "a1"]


def test_a_parent_the_stream_no_longer_lists_does_not_hold_its_child_back() -> None:
    assert [s.id for s in readable([Shard("child", "trimmed-away")], [])] == ["child"]


def test_describe_stream_shards_are_parsed_with_parent_and_closed() -> None:
    shards = parse_shards([
        {"ShardId": "s1",
         "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "9"}},
        {"ShardId": "s2", "ParentShardId": "s1", "SequenceNumberRange": {"StartingSequenceNumber": "10"}},
    ])
    assert shards == [Shard("s1", None, True), Shard("s2", "s1", False)]


def test_a_begun_shard_the_stream_dropped_before_it_was_finished_is_lost() -> None:
    cp = Checkpoint("t", "arn", {"s1": "5", "s2": "7", "s3": None}, {"s2"})
    assert cp.lost(["s3"]) == ["s1"]
    cp.prune(["s1", "s3"])
    assert cp.positions == {"s1": "5", "s3": None} and cp.finished == set()


def test_the_checkpoint_round_trips_through_its_document_and_a_bad_one_stops() -> None:
    cp = Checkpoint("t", "arn", {"s1": "5"}, {"s0"})
    assert Checkpoint.from_doc("t", cp.to_doc(now=1.0)) == cp
    with pytest.raises(CorruptCheckpointError, match=r"reverse\.checkpoint\.t"):
        Checkpoint.from_doc("t", {"shards": []})

"""The DynamoDB Streams side: a table's stream, its shards, iterators and records.

Built on the clients of :mod:`replicator.adapters.dynamodb` (``dynamodb_client`` for
DescribeTable, ``dynamodbstreams_client`` for the rest); every call goes through
``dynamo_errors``, so callers see the product's error tree only.
"""

from __future__ import annotations

from typing import Any

from consumers.reverse.shards import Shard, parse_shards
from consumers.writer.tables import STREAM_VIEW, stream_view
from replicator.adapters.dynamodb import dynamo_errors
from replicator.errors import ConfigError


class DynamoStreams:
    """:class:`~consumers.reverse.ports.StreamSource` over boto3 clients."""

    def __init__(self, dynamodb: Any, streams: Any) -> None:
        self._dynamodb = dynamodb
        self._streams = streams

    def stream_arn(self, table: str) -> str:
        with dynamo_errors("describing the table", table):
            desc = self._dynamodb.describe_table(TableName=table)["Table"]
        view = stream_view(desc)
        if view != STREAM_VIEW:
            have = f"a stream of view type {view}" if view else "no stream"
            raise ConfigError(
                f"DynamoDB table {table!r} has {have}; reverse replication reads the application's "
                f"phase-5 writes from a {STREAM_VIEW} stream: run `replicator write --create-tables` "
                f"(it turns the stream on), then start `replicator reverse` again")
        return str(desc["LatestStreamArn"])

    def shards(self, table: str, stream_arn: str) -> list[Shard]:
        found: list[Shard] = []
        start: dict[str, Any] = {}
        while True:
            with dynamo_errors("describing the stream", table):
                desc = self._streams.describe_stream(StreamArn=stream_arn, **start)["StreamDescription"]
            found.extend(parse_shards(desc.get("Shards", ())))
            last = desc.get("LastEvaluatedShardId")
            if not last:
                return found
            start = {"ExclusiveStartShardId": last}

    def iterator(self, table: str, stream_arn: str, shard: str, after: str | None) -> str:
        where: dict[str, Any] = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
                                 if after is not None else {"ShardIteratorType": "TRIM_HORIZON"})
        with dynamo_errors(f"opening shard {shard}", table):
            out = self._streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard, **where)
        return str(out["ShardIterator"])

    def records(self, table: str, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        with dynamo_errors("reading stream records", table):
            out = self._streams.get_records(ShardIterator=iterator, Limit=limit)
        nxt = out.get("NextShardIterator")
        return list(out.get("Records", ())), (str(nxt) if nxt else None)

"""``replicator write``: the DynamoDB writer (Kafka -> DynamoDB)."""

from replicator.commands.common import stub

register = stub("write", "issue 4", "Apply change events from Kafka to DynamoDB, idempotently and in order.")

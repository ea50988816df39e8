"""``replicator validate``: the stream validator."""

from replicator.commands.common import stub

register = stub("validate", "no issue yet", "Compare each changed row in MySQL with its DynamoDB item.")

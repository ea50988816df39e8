"""``replicator reconcile``: full-table comparison."""

from replicator.commands.common import stub

register = stub("reconcile", "no issue yet", "Compare every row of MySQL with DynamoDB, table by table.")

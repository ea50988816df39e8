"""``replicator run``: the binlog reader (binlog -> Kafka)."""

from replicator.commands.common import stub

register = stub("run", "issue 3", "Stream the MySQL binlog to Kafka, one change event per row.")

"""``replicator backfill``: consistent copy of existing rows."""

from replicator.commands.common import stub

register = stub("backfill", "issue 6", "Copy the existing rows of the mapped tables while writes go on.")

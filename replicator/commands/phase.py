"""``replicator phase``: the five-phase controller."""

from replicator.commands.common import stub

register = stub("phase", "issue 5", "Show, check and change the migration phase (status, set, rollback, history, check).")

"""``replicator status``: live dashboard."""

from replicator.commands.common import stub

register = stub("status", "no issue yet", "Live dashboard of lag, rates and phase.")

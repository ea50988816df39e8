"""``replicator demo``: an end-to-end demonstration on the local stack."""

from replicator.commands.common import stub

register = stub(
    "demo", "built with the pipeline (issues 3-6)", "Run an end-to-end demonstration on the local stack."
)

"""``replicator status``: the figures (:mod:`.figures`), where they come from (:mod:`.sources`)
and how one frame looks (:mod:`.render`)."""

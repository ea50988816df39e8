"""Reverse replication (DESIGN §3.6): DynamoDB Streams -> MySQL, the way back from phase 5.

In phase 5 the application writes DynamoDB only (``_origin = app``). ``replicator reverse``
reads the stream of every mapped DynamoDB table and applies those writes to MySQL through the
inverse mapping, idempotently by primary key, so that a rollback to phase 4 loses nothing.

- :mod:`.records`: one stream record -> a :class:`~.model.Change` (upsert or delete by primary
  key), a rejection (MySQL cannot hold it: dead letter) or a skip (not an application write, or
  not this mapping's item). Pure.
- :mod:`.plan`: the SQL of one table and the conversion of values to PyMySQL parameters. Pure.
- :mod:`.shards`: shard lineage (a child after its parent) and the checkpoint document. Pure.
- :mod:`.streams`, :mod:`.sink`: the DynamoDB Streams source and the MySQL sink (adapters).
- :mod:`.deadletters`, :mod:`.progress`, :mod:`.metrics`: dead letters, lag and heartbeat.
- :mod:`.pages`: the loop's state; :mod:`.runner`: the loop; :mod:`.service`: the wiring of the command.
"""

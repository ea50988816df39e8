"""The DynamoDB writer (``replicator write``): Kafka table topics -> version-conditional DynamoDB writes.

- :mod:`~consumers.writer.batch`: pure: decode, map, coalesce a batch; the offsets it covers.
- :mod:`~consumers.writer.runner`: the loop (phase gate, apply, dead letters, commit, counters).
- :mod:`~consumers.writer.kafka`: consumer and dead-letter producer adapters.
- :mod:`~consumers.writer.schema`: start-up read of the mapped tables' columns.
- :mod:`~consumers.writer.service`: wiring for the CLI.
"""

"""``replicator demo``: the migration guide, end to end, on the local stack.

- :mod:`.workload`: the shop application (schema, seed data, a generator of live changes and
  an executor that applies them to MySQL), reusable by a sample application's load generator;
- :mod:`.story`: the narrated steps, from starting the pipeline to the rollback and the audit;
- :mod:`.processes`: the reader and writer processes the story starts and stops;
- :mod:`.cleanup`: removes what a run created.

The comparison of MySQL with DynamoDB is passed in by the command (it lives in the
validators, above this package), as a :data:`Compare`.
"""

from replicator.demo.story import Compare, Demo, DemoOptions, TableComparison

__all__ = ["Compare", "Demo", "DemoOptions", "TableComparison"]

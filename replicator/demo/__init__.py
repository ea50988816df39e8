"""``replicator demo``: the migration guide, end to end, on the local stack.

- :mod:`.workload`: the shop's schema, seed data and generator of live changes (the sample
  application's load generator reuses it), and an executor that applies them to MySQL;
- :mod:`.story`: the narrated steps, from starting the pipeline to the rollback and the audit;
- :mod:`.app`: what the story needs of the sample application it drives (``examples/shop``:
  a service on :mod:`replicator.client` and its load generator) and reads from the client;
- :mod:`.printing`: the tables and summaries it shows;
- :mod:`.processes`: the reader and writer processes the story starts and stops;
- :mod:`.cleanup`: removes what a run created.

The comparison of MySQL with DynamoDB (it lives in the validators) and the sample application
(it lives in ``examples/``) sit above this package; the command passes them in, as a
:data:`Compare` and a :class:`SampleApp`.
"""

from replicator.demo.app import SampleApp
from replicator.demo.story import Compare, Demo, DemoOptions, TableComparison

__all__ = ["Compare", "Demo", "DemoOptions", "SampleApp", "TableComparison"]

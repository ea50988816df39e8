"""Adapters: the only modules that import a vendor client library.

One module per vendor -- :mod:`.kafka` (confluent-kafka), :mod:`.mysql` (PyMySQL),
:mod:`.binlog` (python-mysql-replication), :mod:`.dynamodb` (boto3/botocore), :mod:`.redis`.
Each has one function per client it builds from the settings (so TLS, SASL and credentials
are honoured everywhere alike) and one context manager that translates that vendor's
exceptions into :mod:`replicator.errors`. Roles call these; none builds its own client or
catches a vendor exception. ``make lint`` enforces it (import-linter contracts in
``pyproject.toml``).
"""

"""The application client ("shim", DESIGN §3.5): one library through which an application reads
and writes in every phase of the migration.

.. code-block:: python

    from replicator.client import connect

    with connect("config.yaml", name="shop-api") as client:
        users = client.table("shop.users")
        users.get({"id": 42})                        # -> dict | None, PyMySQL's types
        users.get_many([{"id": 1}, {"id": 2}])       # -> list[dict | None], in order
        users.query("by_email", {"email": "a@b.c"})  # a declared access pattern -> list[dict]
        users.insert({"id": 43, "email": "x@y.z"})
        users.update({"id": 42}, {"email": "n@y.z"})
        users.delete({"id": 42})
        with client.transaction() as tx:             # atomic on the store that takes writes
            tx.table("shop.orders").insert({...})
        client.phase                                 # the phase snapshot in force

Routing per phase, validation, read-your-writes: see :mod:`replicator.client.table`.
Errors are :mod:`replicator.errors` classes: ``UnknownTableError``, ``KeyShapeError``,
``UnknownAccessPatternError``, ``TransactionTooLargeError`` (usage); ``DuplicateKeyError`` and
``StatementRejected`` (MySQL refused the write); ``UnmappableValueError`` and
``ItemTooLargeError`` (a phase-5 row DynamoDB or the way back to MySQL cannot carry);
``SourceUnavailable`` / ``TargetUnavailable`` (the store that must answer is down);
``WriteConflictError`` (a phase-5 write kept racing others).
"""

from replicator.client.client import Client, connect
from replicator.client.table import Table
from replicator.client.transactions import Transaction

__all__ = ["Client", "Table", "Transaction", "connect"]

"""The binlog reader: MySQL binlog -> change events -> Kafka transactions with checkpoints.

Pure logic (no client, no I/O):

- :mod:`.items`: what a change source yields (transactions, row changes, statements);
- :mod:`.ports`: the Protocols the reader depends on (``ChangeSource``, ``EventSink``, ...);
- :mod:`.schema`, :mod:`.decode`, :mod:`.temporal`: table-map layouts and row images from raw bytes;
- :mod:`.changes`: row changes -> change events, and what a statement means for the mapping;
- :mod:`.transactions`: binlog items -> complete MySQL transactions (the pump thread);
- :mod:`.runner`: the loop, complete transactions -> Kafka transactions and checkpoints;
- :mod:`.start`, :mod:`.gtid`, :mod:`.checkpoint`, :mod:`.checks`: where to start, GTIDs,
  the checkpoint record, the start-up verdicts.

I/O, through :mod:`replicator.adapters`: :mod:`.server` (server metadata over SQL),
:mod:`.sink` (the transactional Kafka sink and the checkpoint read), :mod:`.heartbeat` (lag
in the control store), :mod:`.metrics`, and :mod:`.service`, which wires the real adapters
(the binlog stream is :mod:`replicator.adapters.binlog`) into a reader for ``replicator run``.

Nothing is imported here, so that importing a pure module does not load a vendor library.
"""

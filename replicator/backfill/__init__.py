"""Backfill: a consistent copy of the rows that existed before the stream started (DESIGN §5).

    chunks.py     keyset pagination SQL for single and composite primary keys (pure)
    cells.py      SELECT cells -> the event value model, per column type (pure)
    throttle.py   rows/s cap and adaptive back-off on latency and lag (pure, injected clock)
    source.py     MySQL adapter: table shape, snapshot position, chunk reads
    runner.py     the loop: snapshot chunk -> op "r" events -> Kafka; cursor in the control store
"""

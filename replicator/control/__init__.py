"""The control store: phase state, its audit history, gate counters and progress markers.

    from replicator.control import open_control_store
    with open_control_store(settings) as store:
        store.incr(names.DUAL_WRITE_APPLIED)

The backend is ``settings.control.backend``: Redis (keys and channel under
``settings.namespace``) or a DynamoDB control table (``dynamodb.table_prefix`` +
``control.table``, created on first use). See :mod:`replicator.control.base` for the interface.
"""

from __future__ import annotations

from replicator.control import names
from replicator.control.base import ControlStore
from replicator.control.state import (
    FLAG_NAMES,
    MAX_PHASE,
    MIN_PHASE,
    PHASE_NAMES,
    Freeze,
    HistoryEntry,
    PhaseState,
    flags_for_phase,
)
from replicator.errors import ControlStoreUnavailable, EpochConflict
from replicator.settings import Settings

__all__ = [
    "FLAG_NAMES",
    "MAX_PHASE",
    "MIN_PHASE",
    "PHASE_NAMES",
    "ControlStore",
    "ControlStoreUnavailable",
    "EpochConflict",
    "Freeze",
    "HistoryEntry",
    "PhaseState",
    "control_table_name",
    "counter_retention_s",
    "flags_for_phase",
    "names",
    "open_control_store",
]

_DAY_S = 24 * 3600


def control_table_name(settings: Settings) -> str:
    return settings.dynamodb.table_prefix + settings.control.table


def counter_retention_s(settings: Settings) -> float:
    """How long counter buckets are kept: the longest gate window plus a day of slack."""
    g = settings.gates
    return max(g.window_1_2_s, g.window_2_3_s, g.window_3_4_s, g.window_4_5_s, g.window_5_final_s) + _DAY_S


def open_control_store(settings: Settings) -> ControlStore:
    """The configured store, not yet connected: ``start()``/``close()`` it or use ``with``."""
    retention = counter_retention_s(settings)
    if settings.control.backend == "dynamodb":
        from replicator.control.dynamodb_store import DynamoDBControlStore

        return DynamoDBControlStore(
            control_table_name(settings), endpoint_url=settings.dynamodb.endpoint_url,
            region=settings.dynamodb.region, retention_s=retention,
        )
    from replicator.control.redis_store import RedisControlStore

    return RedisControlStore(settings.control.redis_url, settings.namespace, retention_s=retention)

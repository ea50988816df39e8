"""The checkpoint record round-trips, and an unreadable one stops the reader (pure)."""

from __future__ import annotations

import pytest

from replicator.errors import EXIT_FATAL_DATA, CorruptCheckpointError
from replicator.reader.checkpoint import Checkpoint


def test_checkpoint_round_trips_through_json() -> None:
    cp = Checkpoint("mysql-bin.000004", 1234, "0-1-77", "0-1-77,1-2-3", 1_700_000_000_000)
    assert Checkpoint.from_json(cp.to_json()) == cp


def test_unreadable_checkpoint_is_fatal_and_says_how_to_resume() -> None:
    with pytest.raises(CorruptCheckpointError, match="--from") as err:
        Checkpoint.from_json(b'{"format": 99}')
    assert err.value.exit_code == EXIT_FATAL_DATA

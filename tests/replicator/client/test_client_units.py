"""The client's pure parts: read-your-writes bookkeeping and the lag-aware comparison."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from decimal import Decimal

from replicator.client.freshness import RecentWrites, combine
from replicator.client.validation import DualReadValidator
from replicator.control import names
from replicator.diff import compare
from replicator.events import Row, Temporal
from replicator.testing import ManualClock


def test_a_written_key_waits_for_its_gtid_until_applied_or_forgotten() -> None:
    clock = ManualClock(100.0)
    recent = RecentWrites(remember_s=60, clock=clock)
    recent.record("db.users", [("id=1", {"id": 1})], "0-1-10")
    recent.record("db.users", [("id=2", {"id": 2})], "0-1-12")
    assert recent.keys("db.users") == [{"id": 1}, {"id": 2}]
    assert recent.pending("db.users", "id=1") == "0-1-10"
    assert recent.pending("db.users", "id=3") is None
    assert recent.pending("db.users") == "0-0-12"  # a query waits for every write of the table
    recent.applied("db.users", "0-1-10")
    assert recent.pending("db.users", "id=1") is None
    assert recent.pending("db.users", "id=2") == "0-1-12"
    clock.advance(61)
    assert recent.pending("db.users", "id=2") is None


def test_a_write_without_a_gtid_is_not_remembered() -> None:
    recent = RecentWrites(remember_s=60)
    recent.record("db.users", [("id=1", {"id": 1})], None)
    assert recent.pending("db.users", "id=1") is None


def test_positions_of_several_domains_combine_to_their_per_domain_maximum() -> None:
    assert combine(["0-1-5", "1-2-9", "0-3-7"]) == "0-0-7,1-0-9"


def test_differences_are_classified_per_field() -> None:
    m: Row = {"id": 1, "at": Temporal("datetime", "2024-01-01T00:00:00.123456"), "note": None,
              "price": Decimal("1.50"), "blob": b"\x00"}
    d: Row = {"id": 1, "at": Temporal("datetime", "2024-01-01T00:00:00.123000"), "note": "",
              "price": Decimal("1.5000001"), "blob": b"\x01"}
    found = compare("db.t", "id=1", m, d, key_columns=("id",))
    assert found is not None and found.kind == "value"
    assert found.fields == {"at": "timestamp_precision", "note": "null_vs_empty", "price": "number_decimal",
                            "blob": "binary"}
    assert compare("db.t", "id=1", m, None, ("id",)).kind == "missing"  # type: ignore[union-attr]
    assert compare("db.t", "id=1", None, d, ("id",)).kind == "extra"  # type: ignore[union-attr]
    assert compare("db.t", "id=1", m, dict(m), ("id",)) is None


class Recorder:
    def __init__(self, applied: bool) -> None:
        self.applied = applied
        self.counts: dict[str, int] = {}
        self.outcomes: list[str] = []
        self.waited: list[str | None] = []

    def count(self, name: str, n: int) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def wait(self, sources: Sequence[str], position: str | None, timeout: float) -> bool:
        self.waited.append(position)
        return self.applied


def validator(rec: Recorder) -> DualReadValidator:
    return DualReadValidator(sample_ratio=1.0, recheck_wait_s=0.1, count=rec.count,
                             on_outcome=rec.outcomes.append, on_difference=lambda t, k: None,
                             position=lambda: "0-1-99",
                             wait_applied=rec.wait, rng=random.Random(1))


def test_a_difference_that_the_pipeline_then_applies_is_a_pass_not_a_failure() -> None:
    rec = Recorder(applied=True)
    v = validator(rec)
    v.start()
    mysql: Row = {"id": 1, "name": "new"}
    v.check("db.t", "id=1", mysql, {"id": 1, "name": "old"}, sources=["db.t"], key_columns=("id",),
            fetch=lambda: (mysql, dict(mysql)))
    v.close()
    assert rec.outcomes == ["passed"]
    assert rec.counts == {names.VALIDATION_PASSED: 1}
    assert rec.waited == ["0-1-99"]


def test_lag_the_pipeline_does_not_catch_up_on_is_unverified_and_never_counted_as_failed() -> None:
    rec = Recorder(applied=False)
    v = validator(rec)
    v.start()
    mysql: Row = {"id": 1, "name": "new"}
    v.check("db.t", "id=1", mysql, {"id": 1, "name": "old"}, sources=["db.t"], key_columns=("id",),
            fetch=lambda: (mysql, {"id": 1, "name": "old"}))
    v.close()
    assert rec.outcomes == ["unverified"]
    assert names.VALIDATION_FAILED not in rec.counts


def test_a_difference_that_persists_once_applied_on_an_unchanged_row_is_a_failure() -> None:
    rec = Recorder(applied=True)
    v = validator(rec)
    v.start()
    mysql: Row = {"id": 1, "name": "right"}
    v.check("db.t", "id=1", mysql, {"id": 1, "name": "wrong"}, sources=["db.t"], key_columns=("id",),
            fetch=lambda: (dict(mysql), {"id": 1, "name": "wrong"}))
    v.close()
    assert rec.outcomes == ["failed"]
    assert rec.counts == {names.VALIDATION_FAILED: 1}


def test_rechecks_still_queued_when_the_client_closes_are_unverified_not_run_on_closed_stores() -> None:
    rec = Recorder(applied=True)
    release = threading.Event()
    ran: list[str] = []

    def slow_fetch() -> tuple[Row | None, Row | None]:
        release.wait(5)
        ran.append("fetch")
        return {"id": 1, "name": "x"}, {"id": 1, "name": "x"}

    v = DualReadValidator(sample_ratio=1.0, recheck_wait_s=0.0, count=rec.count,
                          on_outcome=rec.outcomes.append, on_difference=lambda t, k: None,
                          position=lambda: "0-1-99", wait_applied=rec.wait)
    v.start()
    for i in range(3):
        v.check("db.t", f"id={i}", {"id": i, "name": "a"}, {"id": i, "name": "b"}, sources=["db.t"],
                key_columns=("id",), fetch=slow_fetch)
    v.close(timeout_s=0.05)  # the first recheck is still waiting on its fetch
    release.set()
    deadline = time.monotonic() + 5
    while len(rec.outcomes) < 3:
        assert time.monotonic() < deadline, rec.outcomes
        time.sleep(0.01)
    assert rec.outcomes.count("unverified") >= 2 and len(ran) == 1  # the queued two never fetched

"""The lag-aware comparison of changed keys, on fake stores and a manual clock."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from replicator.control.watermark import ReaderMark, WatermarkSnapshot
from replicator.events import Row
from replicator.testing import ManualClock
from validators.checks import Check, CheckerOptions, LagAwareChecker, StoredItem

TOPIC = "cdc.db.users"
SOURCE = "db.users"


@dataclass
class FakeStores:
    """MySQL rows and DynamoDB items by key text; ``head``: the binlog version of a MySQL read."""

    rows: dict[str, Row] = field(default_factory=dict)
    items: dict[str, StoredItem] = field(default_factory=dict)
    head: int = 1000
    mysql_reads: int = 0
    dynamodb_reads: int = 0

    def key_text(self, source: str, image: Row) -> str:
        return f"id={image['id']}"

    def key_columns(self, source: str) -> tuple[str, ...]:
        return ("id",)

    def mysql(self, source: str, images: Sequence[Row]) -> tuple[dict[str, Row], dict[str, int]]:
        self.mysql_reads += 1
        keys = [self.key_text(source, i) for i in images]
        return {k: dict(self.rows[k]) for k in keys if k in self.rows}, dict.fromkeys(keys, self.head)

    def dynamodb(self, source: str, images: Sequence[Row]) -> dict[str, StoredItem]:
        self.dynamodb_reads += 1
        keys = [self.key_text(source, i) for i in images]
        return {k: self.items[k] for k in keys if k in self.items}


@dataclass
class FakeWatermark:
    """The pipeline has applied everything before binlog version ``through`` and writer offsets
    up to ``applied`` (next offset) of partition 0 (None: no writer has said anything)."""

    through: int = 0
    applied: int | None = None

    def __call__(self) -> WatermarkSnapshot:
        if self.applied is None:
            return WatermarkSnapshot(ReaderMark("", self.through, {}), {})
        reader = ReaderMark("", self.through, {(TOPIC, 0): self.applied - 1})
        return WatermarkSnapshot(reader, {(TOPIC, 0): self.applied})


def check(key: int, version: int, offset: int = 5, at: float = 0.0) -> Check:
    return Check(SOURCE, f"id={key}", {"id": key, "name": "x"}, version, TOPIC, 0, offset, at)


def checker(stores: FakeStores, wm: FakeWatermark, clock: ManualClock,
            on_sleep: Callable[[float], None] | None = None, wait_s: float = 5.0) -> LagAwareChecker:
    def sleep(s: float) -> None:
        clock.sleep(s)
        if on_sleep is not None:
            on_sleep(clock.at)

    return LagAwareChecker(stores, wm, CheckerOptions(recheck_wait_s=wait_s, poll_s=0.5), clock=clock,
                           sleep=sleep)


def row(key: int, name: str) -> Row:
    return {"id": key, "name": name}


def test_an_applied_key_that_matches_passes_without_waiting() -> None:
    stores = FakeStores({"id=1": row(1, "a")}, {"id=1": StoredItem(row(1, "a"), 100)})
    clock = ManualClock()
    [v] = checker(stores, FakeWatermark(), clock).resolve([check(1, 100)])
    assert (v.outcome, v.reason, clock.slept) == ("passed", "equal", [])


def test_a_key_the_writer_has_not_applied_yet_waits_and_then_passes() -> None:
    stores = FakeStores({"id=1": row(1, "new")}, {"id=1": StoredItem(row(1, "old"), 90)})

    def writer_catches_up(now: float) -> None:
        if now >= 2.0:
            stores.items["id=1"] = StoredItem(row(1, "new"), 100)

    clock = ManualClock()
    [v] = checker(stores, FakeWatermark(), clock, writer_catches_up).resolve([check(1, 100)])
    assert v.outcome == "passed" and clock.at == 2.0
    assert stores.mysql_reads == 1, "MySQL is read only once the change is applied"


def test_while_the_writers_offsets_are_behind_the_event_dynamodb_is_not_read() -> None:
    stores = FakeStores({"id=1": row(1, "a")}, {"id=1": StoredItem(row(1, "a"), 100)})
    wm = FakeWatermark(through=1000, applied=3)

    def writer_moves(now: float) -> None:
        if now >= 2.0:
            wm.applied = 6

    clock = ManualClock()
    [v] = checker(stores, wm, clock, writer_moves).resolve([check(1, 100, offset=5)])
    assert v.outcome == "passed" and clock.at == 2.0
    assert stores.dynamodb_reads == 1, "one item read, once the writer was past the event"


def test_without_the_writers_offsets_an_item_is_read_again_at_most_every_reread_s() -> None:
    stores = FakeStores({"id=1": row(1, "new")}, {"id=1": StoredItem(row(1, "old"), 90)})
    clock = ManualClock()
    [v] = checker(stores, FakeWatermark(), clock, wait_s=3.0).resolve([check(1, 100)])
    assert v.reason == "lag" and stores.dynamodb_reads == 4  # at 0, 1, 2 and the deadline 3


def test_a_writer_that_never_catches_up_leaves_the_key_unverified_never_failed() -> None:
    stores = FakeStores({"id=1": row(1, "new")}, {"id=1": StoredItem(row(1, "old"), 90)})
    clock = ManualClock()
    [v] = checker(stores, FakeWatermark(), clock, wait_s=3.0).resolve([check(1, 100)])
    assert (v.outcome, v.reason) == ("unverified", "lag")
    assert clock.at == 3.0 and stores.mysql_reads == 0


def test_a_planted_value_difference_fails_once_the_pipeline_has_applied_past_the_read() -> None:
    stores = FakeStores({"id=1": row(1, "right")}, {"id=1": StoredItem(row(1, "wrong"), 100)}, head=1000)
    clock = ManualClock()
    [v] = checker(stores, FakeWatermark(through=1000, applied=6), clock).resolve([check(1, 100)])
    assert (v.outcome, v.reason) == ("failed", "value")
    assert v.mismatch is not None and v.mismatch.fields == {"name": "other"}
    assert (v.mysql, v.dynamodb) == (row(1, "right"), row(1, "wrong"))


def test_a_newer_mysql_change_still_in_flight_is_not_a_failure() -> None:
    # The event (v100) is applied, but MySQL already holds a later change (v500) the writer has
    # not applied: the comparison waits for the pipeline to pass the MySQL read, then passes.
    stores = FakeStores({"id=1": row(1, "v500")}, {"id=1": StoredItem(row(1, "v100"), 100)}, head=1000)
    wm = FakeWatermark(through=400, applied=6)

    def pipeline_moves(now: float) -> None:
        if now >= 1.5:
            stores.items["id=1"] = StoredItem(row(1, "v500"), 500)
            wm.through = 1000

    clock = ManualClock()
    [v] = checker(stores, wm, clock, pipeline_moves).resolve([check(1, 100)])
    assert (v.outcome, v.reason) == ("passed", "equal")


def test_an_item_newer_than_the_mysql_read_makes_mysql_be_read_again() -> None:
    stores = FakeStores({"id=1": row(1, "a")}, {"id=1": StoredItem(row(1, "b"), 100)}, head=1000)
    wm = FakeWatermark(through=1000, applied=6)

    def row_changes_and_is_applied(now: float) -> None:
        stores.rows["id=1"] = row(1, "c")
        stores.items["id=1"] = StoredItem(row(1, "c"), 1200)
        stores.head = 1300
        wm.through = 1300

    stores_read = stores.dynamodb

    def dynamodb(source: str, images: Sequence[Row]) -> dict[str, StoredItem]:
        if stores.dynamodb_reads == 1:  # the settle read finds the row's next change applied
            row_changes_and_is_applied(0)
        return stores_read(source, images)

    stores.dynamodb = dynamodb  # type: ignore[method-assign]
    [v] = checker(stores, wm, ManualClock()).resolve([check(1, 100)])
    assert (v.outcome, v.reason) == ("passed", "equal") and stores.mysql_reads == 2


def test_a_missing_item_fails_once_the_writers_offsets_are_past_the_event() -> None:
    stores = FakeStores({"id=1": row(1, "a")}, {}, head=1000)
    [v] = checker(stores, FakeWatermark(through=1000, applied=6), ManualClock()).resolve([check(1, 100, 5)])
    assert (v.outcome, v.reason) == ("failed", "missing")


def test_a_missing_item_the_writer_has_not_reached_is_lag() -> None:
    stores = FakeStores({"id=1": row(1, "a")}, {}, head=1000)
    [v] = checker(stores, FakeWatermark(through=1000, applied=5), ManualClock()).resolve([check(1, 100, 5)])
    assert (v.outcome, v.reason) == ("unverified", "lag")


def test_an_item_left_alive_after_its_delete_is_extra() -> None:
    stores = FakeStores({}, {"id=1": StoredItem(row(1, "ghost"), 100)}, head=1000)
    [v] = checker(stores, FakeWatermark(through=1000, applied=6), ManualClock()).resolve([check(1, 100)])
    assert (v.outcome, v.reason) == ("failed", "extra")


def test_a_deleted_row_with_its_tombstone_passes() -> None:
    stores = FakeStores({}, {"id=1": StoredItem(None, 100)})
    [v] = checker(stores, FakeWatermark(), ManualClock()).resolve([check(1, 100)])
    assert v.outcome == "passed"


def test_a_difference_the_pipeline_never_settles_is_unverified() -> None:
    stores = FakeStores({"id=1": row(1, "a")}, {"id=1": StoredItem(row(1, "b"), 100)}, head=1000)
    clock = ManualClock()
    [v] = checker(stores, FakeWatermark(through=999, applied=6), clock, wait_s=2.0).resolve([check(1, 100)])
    assert (v.outcome, v.reason) == ("unverified", "lag") and clock.at == 2.0


def test_a_batch_resolves_each_key_on_its_own() -> None:
    stores = FakeStores(
        {"id=1": row(1, "a"), "id=2": row(2, "a"), "id=3": row(3, "a")},
        {"id=1": StoredItem(row(1, "a"), 100), "id=2": StoredItem(row(2, "zz"), 100),
         "id=3": StoredItem(row(3, "old"), 10)}, head=1000)
    verdicts = checker(stores, FakeWatermark(through=1000, applied=6), ManualClock(), wait_s=1.0).resolve(
        [check(1, 100), check(2, 100), check(3, 100, offset=7)])
    assert sorted((v.check.key, v.outcome) for v in verdicts) == [
        ("id=1", "passed"), ("id=2", "failed"), ("id=3", "unverified")]


PARENT_TOPIC = "cdc.db.orders"


def test_a_child_the_parents_topic_has_not_deleted_yet_is_waited_for_not_failed() -> None:
    # An order item (id=1) changed at v100; its order was then deleted at v900 and ON DELETE
    # CASCADE removed the item below the binlog. MySQL (read at v1000) has no row. The order
    # items' topic is applied through v1000, but the order's delete — which takes its children —
    # is on the orders topic, still behind: the settle step must wait for that topic too, not
    # report the child as an extra row. Once the delete is applied the entry is gone, as new as
    # the delete (its parent's ``_pdel``), and the comparison passes.
    stores = FakeStores({}, {"id=1": StoredItem(row(1, "a"), 100)}, head=1000)
    parent_applied = False

    def watermark() -> WatermarkSnapshot:
        reader = ReaderMark("", 1000, {(TOPIC, 0): 5, (PARENT_TOPIC, 0): 3})
        return WatermarkSnapshot(reader, {(TOPIC, 0): 6, (PARENT_TOPIC, 0): 4 if parent_applied else 3})

    def the_parents_delete_lands(now: float) -> None:
        nonlocal parent_applied
        if now >= 2.0:
            parent_applied = True
            stores.items["id=1"] = StoredItem(None, 900)

    clock = ManualClock()

    def sleep(s: float) -> None:
        clock.sleep(s)
        the_parents_delete_lands(clock.at)

    checker_ = LagAwareChecker(stores, watermark, CheckerOptions(recheck_wait_s=5.0, poll_s=0.5), clock=clock,
                               sleep=sleep, topics=(TOPIC, PARENT_TOPIC))
    [v] = checker_.resolve([check(1, 100)])
    assert (v.outcome, v.reason) == ("passed", "equal"), v
    assert clock.at >= 2.0


def test_a_child_its_parents_delete_took_after_the_mysql_read_makes_mysql_be_read_again() -> None:
    # MySQL read at v1000 still has the order item; by the settle read, its parent's delete at
    # v1100 (after the read) has taken the entry: not a lost row — the row moved on. MySQL is read
    # again (now without the row) and the two agree.
    stores = FakeStores({"id=1": row(1, "a")}, {"id=1": StoredItem(row(1, "b"), 100)}, head=1000)
    wm = FakeWatermark(through=1000, applied=6)
    stores_read = stores.dynamodb

    def dynamodb(source: str, images: Sequence[Row]) -> dict[str, StoredItem]:
        if stores.dynamodb_reads == 1:  # the settle read: the parent's delete has landed
            stores.items["id=1"] = StoredItem(None, 1100)
            del stores.rows["id=1"]
            stores.head = 1200
        return stores_read(source, images)

    stores.dynamodb = dynamodb  # type: ignore[method-assign]
    [v] = checker(stores, wm, ManualClock()).resolve([check(1, 100)])
    assert (v.outcome, v.reason) == ("passed", "equal") and stores.mysql_reads == 2

"""The stream validator's loop on in-memory ports: sampling, coalescing, counting, committing."""

from __future__ import annotations

import time

from structlog.testing import capture_logs

from consumers.writer.batch import RawMessage
from replicator.control import HistoryEntry, PhaseState, names
from replicator.control.memory import MemoryControlStore
from replicator.events import ChangeEvent, Position, TxInfo
from replicator.settings import load_settings
from replicator.testing import ManualClock, MemoryEventConsumer
from tests.validators.test_checks import SOURCE, TOPIC, FakeStores, FakeWatermark, row
from validators.checks import CheckerOptions, LagAwareChecker, StoredItem
from validators.metrics import ValidatorMetrics
from validators.stream import StreamValidator, sampled


def event(key: int, version: int, name: str = "x", op: str = "u") -> ChangeEvent:
    image = {"id": key, "name": name}
    return ChangeEvent(op=op, db="db", table="users", pk={"id": key},  # type: ignore[arg-type]
                       before=image if op in ("u", "d") else None, after=None if op == "d" else image,
                       pos=Position("mysql-bin.000001", version), version=version, ts_ms=0,
                       tx=TxInfo("t", 0), schema="s", columns=(("id", "int"), ("name", "varchar(9)")))


def messages(events: list[ChangeEvent], first_offset: int = 0) -> list[RawMessage]:
    return [RawMessage(TOPIC, 0, first_offset + i, e.key_bytes(), e.to_json()) for i, e in enumerate(events)]


def make(stores: FakeStores, *, ratio: float = 1.0, phase: int = 3) -> tuple[StreamValidator,
                                                                          MemoryEventConsumer[RawMessage],
                                                                          MemoryControlStore]:
    settings = load_settings(tables=[{"source": SOURCE}], validation={"sample_ratio": ratio})
    control = MemoryControlStore()
    control.compare_and_set(PhaseState(phase=phase, epoch=1, updated_at=time.time()),
                            HistoryEntry(1, time.time(), "test", 1, phase, "test"))
    consumer: MemoryEventConsumer[RawMessage] = MemoryEventConsumer()
    clock = ManualClock(time.time())
    checker = LagAwareChecker(stores, FakeWatermark(through=10**6, applied=10**6),
                              CheckerOptions(recheck_wait_s=1.0, poll_s=0.5), clock=clock, sleep=clock.sleep)
    v = StreamValidator(settings, consumer, stores, checker, control, ValidatorMetrics(), clock=clock)
    return v, consumer, control


def counters(control: MemoryControlStore) -> tuple[int, int]:
    now = time.time()
    return (control.window_sum(names.VALIDATION_PASSED, now - 3600, now + 3600),
            control.window_sum(names.VALIDATION_FAILED, now - 3600, now + 3600))


def test_each_key_is_compared_once_per_batch_at_its_newest_change_and_offsets_are_committed() -> None:
    stores = FakeStores({"id=1": row(1, "c"), "id=2": row(2, "b")},
                        {"id=1": StoredItem(row(1, "c"), 30), "id=2": StoredItem(row(2, "WRONG"), 20)})
    v, consumer, control = make(stores)
    consumer.add(messages([event(1, 10, "a"), event(2, 20, "b"), event(1, 30, "c")]))
    verdicts = v.step()
    assert sorted((x.check.key, x.check.version, x.outcome) for x in verdicts) == [
        ("id=1", 30, "passed"), ("id=2", 20, "failed")]
    assert consumer.committed == {(TOPIC, 0): 3}
    assert counters(control) == (1, 1)
    assert (v.totals.passed, v.totals.failed, v.totals.skipped) == (1, 1, 1)


def test_a_failure_is_logged_with_the_guides_text_and_the_differing_columns() -> None:
    stores = FakeStores({"id=2": row(2, "b")}, {"id=2": StoredItem(row(2, "WRONG"), 20)})
    v, consumer, _ = make(stores)
    consumer.add(messages([event(2, 20, "b")]))
    with capture_logs() as logs:
        v.step()
    [failure] = [e for e in logs if e.get("marker") == "Data validation failed"]
    assert failure["log_level"] == "warning"
    assert (failure["table"], failure["key"], failure["kind"], failure["fields"]) == (
        SOURCE, "id=2", "value", {"name": "other"})
    assert "WRONG" not in repr(failure), "values stay out of the warning line"
    [values] = [e for e in logs if e["event"] == "data_validation_failed_values"]
    assert values["log_level"] == "debug" and "WRONG" in repr(values["diff"])


def test_sampling_is_a_stable_share_of_the_keys() -> None:
    keys = [f"k{i}".encode() for i in range(20_000)]
    chosen = [k for k in keys if sampled(k, 7, 0.1)]
    assert 1700 < len(chosen) < 2300
    assert chosen == [k for k in keys if sampled(k, 7, 0.1)], "every replica and restart picks the same"
    assert all(sampled(k, 7, 1.0) for k in keys[:100]) and not any(sampled(k, 7, 0.0) for k in keys[:100])


def test_unsampled_keys_are_skipped_and_still_committed() -> None:
    v, consumer, control = make(FakeStores(), ratio=0.0)
    consumer.add(messages([event(1, 10), event(2, 20)]))
    assert v.step() == []
    assert consumer.committed == {(TOPIC, 0): 2} and counters(control) == (0, 0)


def test_events_of_unmapped_tables_and_unreadable_messages_are_skipped() -> None:
    v, consumer, _ = make(FakeStores())
    other = ChangeEvent.from_json(event(1, 10).to_json().replace(b'"table":"users"', b'"table":"other"'))
    consumer.add([RawMessage(TOPIC, 0, 0, b"k", b"not json"), *messages([other], 1)])
    assert v.step() == []
    assert v.totals.skipped == 2 and consumer.committed == {(TOPIC, 0): 2}


def test_outside_phases_2_to_4_nothing_is_consumed() -> None:
    v, consumer, _ = make(FakeStores(), phase=1)
    consumer.add(messages([event(1, 10)]))
    assert v.step() == [] and consumer.paused and consumer.queue


def test_a_store_that_fails_is_retried_and_nothing_is_committed_before_the_batch_is_judged() -> None:
    from replicator.errors import SourceUnavailable

    stores = FakeStores({"id=1": row(1, "a")}, {"id=1": StoredItem(row(1, "a"), 10)})
    real = stores.mysql
    failures = [SourceUnavailable("down")]

    def flaky(source: str, images: list[dict[str, object]]) -> object:
        if failures:
            assert consumer.committed == {}
            raise failures.pop()
        return real(source, images)  # type: ignore[arg-type]

    stores.mysql = flaky  # type: ignore[assignment]
    v, consumer, _ = make(stores)
    v.options = type(v.options)(retry_s=0.0)
    resets: list[int] = []
    v.on_reset = lambda: resets.append(1)
    consumer.add(messages([event(1, 10, "a")]))
    [verdict] = v.step()
    assert verdict.outcome == "passed" and resets == [1] and consumer.committed == {(TOPIC, 0): 1}

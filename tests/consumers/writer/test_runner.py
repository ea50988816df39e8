"""The writer loop's decisions, with the in-memory Kafka, DynamoDB and control store of replicator.testing."""

from __future__ import annotations

import time

from consumers.writer.applier import WriteResult
from consumers.writer.batch import DeadLetter, RawMessage
from consumers.writer.metrics import WriterMetrics
from consumers.writer.runner import Writer, WriterOptions
from replicator.settings import load_settings
from replicator.testing import MemoryApplier, MemoryControlStore, MemoryDeadLetters, MemoryEventConsumer
from tests.consumers.conftest import make_event, set_phase

TOPIC = "cdc.shop.users"


def _writer(messages: list[RawMessage],
            phase: int) -> tuple[Writer, MemoryEventConsumer[RawMessage], list[str], MemoryControlStore]:
    journal: list[str] = []  # the order of the acknowledgements (see replicator.testing)
    control = MemoryControlStore()
    set_phase(control, phase)
    consumer = MemoryEventConsumer(messages, journal=journal)
    applier = MemoryApplier(WriteResult, journal=journal)
    applier.start()
    settings = load_settings(tables=[{"source": "shop.users"}])
    writer = Writer(settings, consumer, applier, MemoryDeadLetters[DeadLetter](journal=journal), control,
                    WriterMetrics(), WriterOptions(phase_refresh_s=0))
    return writer, consumer, journal, control


def _messages() -> list[RawMessage]:
    good = [RawMessage(TOPIC, 0, i, b"k", make_event("c", "shop", i, 10 + i).to_json()) for i in range(3)]
    return [*good, RawMessage(TOPIC, 0, 3, b"k", b"garbage")]


def test_offsets_are_committed_after_dynamodb_and_the_dead_letters_acknowledged() -> None:
    writer, consumer, journal, _ = _writer(_messages(), phase=2)
    writer.step()
    assert journal == ["dynamodb", "dead-letter", "commit"]
    assert consumer.committed == {(TOPIC, 0): 4}


def test_in_phases_without_dual_write_nothing_is_consumed_or_committed() -> None:
    for phase in (1, 5):
        writer, consumer, journal, _ = _writer(_messages(), phase=phase)
        writer.step()
        assert consumer.paused and journal == [] and len(consumer.queue) == 4


def test_the_writer_resumes_when_the_phase_enables_dual_write() -> None:
    writer, consumer, journal, control = _writer(_messages(), phase=1)
    writer.step()
    set_phase(control, 2)
    writer.step()
    assert not consumer.paused and journal[-1] == "commit"


def test_gate_counters_count_applied_and_failed_events() -> None:
    writer, _, _, control = _writer(_messages(), phase=3)
    writer.step()
    now = time.time()
    assert control.window_sum("dual_write.applied", now - 600, now + 60) == 3
    assert control.window_sum("dual_write.failed", now - 600, now + 60) == 1


def test_the_heartbeat_carries_the_writers_pace_for_the_switch_gate() -> None:
    writer, _, _, control = _writer(_messages(), phase=2)
    now = [1000.0]
    writer.clock = lambda: now[0]
    interval = writer.options.heartbeat_s
    writer._heartbeat(now[0])
    writer.step()  # four events: three applied, one dead-lettered
    now[0] += interval
    writer._heartbeat(now[0])
    beat = control.get_marker("writer.heartbeat")
    assert beat is not None and beat["events_per_s"] == round(4 / interval, 1)


def test_the_end_to_end_lag_runs_from_the_oldest_changes_mysql_commit_to_dynamodb() -> None:
    from replicator.events import ChangeEvent

    messages = _messages()
    writer, _, _, _ = _writer(messages, phase=2)
    oldest_commit_s = min(ChangeEvent.from_json(m.value).ts_ms for m in messages[:3] if m.value) / 1000
    writer.clock = lambda: oldest_commit_s + 7.5
    writer.step()
    assert writer.metrics.replication_lag._value.get() == 7.5  # type: ignore[attr-defined]
    assert writer.metrics.replication_latency._sum.get() == 7.5  # type: ignore[attr-defined]


def test_each_turn_of_the_loop_keeps_healthz_alive_and_a_readable_phase_makes_it_ready() -> None:
    from replicator.metrics import Health
    from replicator.testing import ManualClock

    writer, _, _, _ = _writer(_messages(), phase=2)
    clock = ManualClock(0.0)
    writer.health = Health(max_silence_s=10, clock=clock)
    clock.advance(11)
    assert not writer.health.live()[0] and not writer.health.ready()[0]
    writer.step()
    assert writer.health.live() == (True, "ok") and writer.health.ready() == (True, "ok")


def test_dead_letters_are_remembered_for_the_dual_write_gate_to_name_them() -> None:
    from replicator.control import names
    from replicator.phase import gates

    writer, _, _, control = _writer(_messages(), phase=2)
    writer.step()
    recent = (control.get_marker(names.WRITER_DEADLETTERS) or {})["recent"]
    assert [d["reason"] for d in recent] == ["not-json"], recent  # the garbage message
    result = gates.dual_write_success(3, 1, 0.99, 600, recent)
    assert not result.passed and "dead letters:" in result.detail and "(not-json)" in result.detail


def test_an_item_dynamodb_refuses_as_too_large_is_dead_lettered_as_such() -> None:
    control = MemoryControlStore()
    set_phase(control, 2)
    letters = MemoryDeadLetters[DeadLetter]()
    applier = MemoryApplier(WriteResult, reject=lambda w: "ValidationException: Item size has exceeded the "
                                                           "maximum allowed size")
    applier.start()
    writer = Writer(load_settings(tables=[{"source": "shop.users"}]),
                    MemoryEventConsumer(_messages()[:1]), applier, letters, control, WriterMetrics(),
                    WriterOptions(phase_refresh_s=0))
    writer.step()
    assert [(d.reason, d.table) for d in letters.letters] == [("item-too-large", "users")]

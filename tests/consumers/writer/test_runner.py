"""The writer loop's decisions, with in-memory stand-ins for Kafka, DynamoDB and the control store."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from consumers.writer.applier import ConditionalApplier
from consumers.writer.batch import DeadLetter, RawMessage
from consumers.writer.metrics import WriterMetrics
from consumers.writer.runner import Writer, WriterOptions
from replicator.control.memory import MemoryControlStore
from replicator.settings import load_settings
from tests.consumers.conftest import make_event, set_phase

TOPIC = "cdc.shop.users"


class Journal(list[str]):
    """The order in which the stand-ins were called."""


class FakeConsumer:
    def __init__(self, journal: Journal, messages: list[RawMessage]) -> None:
        self.journal, self.queue, self.paused = journal, messages, False
        self.committed: dict[tuple[str, int], int] = {}

    def start(self) -> None: ...
    def close(self) -> None: ...

    def poll_batch(self, max_messages: int, timeout: float) -> list[RawMessage]:
        if self.paused:
            return []
        out, self.queue = self.queue[:max_messages], self.queue[max_messages:]
        return out

    def commit(self, offsets: dict[tuple[str, int], int]) -> None:
        self.journal.append("commit")
        self.committed.update(offsets)

    def pause_all(self) -> None:
        self.paused = True

    def resume_all(self) -> None:
        self.paused = False


class FakeDeadLetters:
    def __init__(self, journal: Journal) -> None:
        self.journal, self.letters = journal, []  # type: ignore[var-annotated]

    def start(self) -> None: ...
    def close(self) -> None: ...

    def send(self, letters: Iterable[DeadLetter]) -> None:
        self.journal.append("dead-letter")
        self.letters.extend(letters)


class FakeDynamo:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def transact_write_items(self, **kw: Any) -> dict[str, Any]:
        self.journal.append("dynamodb")
        return {}

    def put_item(self, **kw: Any) -> dict[str, Any]:
        self.journal.append("dynamodb")
        return {}


def _writer(messages: list[RawMessage],
            phase: int) -> tuple[Writer, FakeConsumer, Journal, MemoryControlStore]:
    journal = Journal()
    control = MemoryControlStore()
    set_phase(control, phase)
    consumer = FakeConsumer(journal, messages)
    applier = ConditionalApplier(FakeDynamo(journal), concurrency=2)  # type: ignore[arg-type]
    applier.start()
    settings = load_settings(tables=[{"source": "shop.users"}])
    writer = Writer(settings, consumer, applier, FakeDeadLetters(journal), control, WriterMetrics(),
                    WriterOptions(phase_refresh_s=0))
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

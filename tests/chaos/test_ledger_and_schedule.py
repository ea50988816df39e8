"""The campaign's pure parts: the application's ledger, the seeded schedule, the stack it restarts."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from replicator.settings import load_settings
from tests.chaos.campaign import stack_mismatch
from tests.chaos.ledger import parse
from tests.chaos.schedule import REVERSE, draw, next_phase

A = {"grp": "1", "name": "a", "amount": "1.00"}
B = {"grp": "2", "name": "b", "amount": "2.00"}


def _lines(*recs: dict[str, object]) -> list[str]:
    return [json.dumps(r) for r in recs]


def test_an_acknowledged_write_is_the_only_state_allowed() -> None:
    book = parse(_lines({"t": "intent", "op": 1, "rows": {"7": A}}, {"t": "ok", "op": 1}))
    assert book.certain(7) and book.state(7) == A
    assert book.violations({7: A}) == []
    assert book.violations({}) != []  # the acknowledged insert is missing from MySQL
    assert book.violations({7: B}) != []


def test_an_unknown_outcome_allows_both_states_and_makes_the_id_uncertain() -> None:
    book = parse(_lines({"t": "intent", "op": 1, "rows": {"7": A}}, {"t": "ok", "op": 1},
                        {"t": "intent", "op": 2, "rows": {"7": None}}, {"t": "failed", "op": 2}))
    assert not book.certain(7) and book.live() == []
    assert book.violations({7: A}) == [] and book.violations({}) == []
    assert book.violations({7: B}) != []


def test_a_rolled_back_transaction_changes_nothing() -> None:
    book = parse(_lines({"t": "intent", "op": 1, "rows": {"7": A, "8": B}}, {"t": "rolledback", "op": 1}))
    assert book.violations({}) == []
    assert book.violations({8: B}) != []  # a rolled-back row that reached MySQL is a violation


def test_an_intent_without_outcome_is_unknown_and_a_torn_line_is_ignored() -> None:
    lines = [*_lines({"t": "intent", "op": 1, "rows": {"7": A}}), '{"t": "ok", "o']
    book = parse(lines)
    book.settle()
    assert book.unknown == 1 and not book.certain(7)
    assert book.next_id() == 8


def test_a_seed_draws_the_same_schedule_and_without_restarts_no_server_restarts() -> None:
    assert draw(42) == draw(42)
    assert draw(42) != draw(43)
    for seed in range(50):
        assert not any(a.kind.startswith("restart_") for a in draw(seed, restarts=False))


def test_phase_changes_without_the_switch_stream_stay_below_phase_5_and_leave_phase_1_forward() -> None:
    rng = random.Random(1)
    for current in (1, 2, 3, 4):
        for _ in range(50):
            target = next_phase(rng, current)
            assert 1 <= target <= 4 and target != current
    assert next_phase(rng, 1) == 2


def test_with_the_switch_stream_phase_4_sometimes_switches_to_5_and_5_always_goes_back_to_4() -> None:
    rng, switch_rng = random.Random(1), random.Random(2)
    from_4 = {next_phase(rng, 4, switch_rng) for _ in range(100)}
    assert 5 in from_4 and from_4 - {5} and from_4 <= {1, 2, 3, 5}
    assert {next_phase(rng, 5, switch_rng) for _ in range(20)} == {4}  # lower needs acknowledgements
    for current in (1, 2, 3):
        assert all(next_phase(rng, current, switch_rng) != 5 for _ in range(50))


def test_phase_5_adds_to_a_seeds_schedule_and_keeps_the_rest_in_order() -> None:
    switched = 0
    for seed in range(40):
        before, after = draw(seed, phase5=False), draw(seed)
        added = list(after)
        for act in before:  # the schedule before phase 5, in order, inside the new one
            added.remove(act)
        assert [a for a in after if a in before] == before
        faults = [a for a in added if a.is_fault]
        assert len(faults) == 1, "every run has one fault of the reverse replication"
        assert faults[0].target.split(".")[0] == REVERSE
        targets = [a.target for a in added if a.kind == "switch"]
        assert targets in ([], ["5"], ["5", "4"])  # a switch back follows its switch
        assert len(added) == 1 + len(targets)
        switched += bool(targets)
    assert 0 < switched < 40


def test_restarts_are_refused_unless_stack_py_would_restart_the_servers_the_runs_use(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("REPLICATOR_")]:  # the suite's own stack's
        monkeypatch.delenv(name)
    base = load_settings(mysql={"port": 53306}, kafka={"bootstrap_servers": "127.0.0.1:59092"},
                         dynamodb={"endpoint_url": "http://127.0.0.1:58000"},
                         control={"redis_url": "redis://127.0.0.1:56379/0"})
    ports = {"STACK_MYSQL_PORT": "53306", "STACK_REDIS_PORT": "56379", "STACK_KAFKA_PORT": "59092",
             "STACK_DYNAMODB_PORT": "58000"}
    (tmp_path / "env").write_text("REPLICATOR_MYSQL__PORT=53306\n"
                                  "REPLICATOR_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:59092\n"
                                  "REPLICATOR_DYNAMODB__ENDPOINT_URL=http://127.0.0.1:58000\n"
                                  "REPLICATOR_CONTROL__REDIS_URL=redis://127.0.0.1:56379/0\n")
    assert stack_mismatch({**ports, "STACK_DIR": str(tmp_path)}, base) is None
    only_env_file = stack_mismatch({"STACK_DIR": str(tmp_path)}, base)  # ports: .stack's defaults
    assert only_env_file is not None and "mysql 53306 vs 13306" in only_env_file
    other = tmp_path / "other"
    other.mkdir()
    (other / "env").write_text((tmp_path / "env").read_text().replace("53306", "13306"))
    wrong_dir = stack_mismatch({**ports, "STACK_DIR": str(other)}, base)
    assert wrong_dir is not None and "mysql 53306 vs 13306 in" in wrong_dir

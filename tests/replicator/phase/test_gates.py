"""Gate arithmetic: thresholds at their exact boundaries, and no vacuous passes."""

from __future__ import annotations

import pytest

from replicator.phase import gates

DAY = 86400.0


def test_dual_write_success_of_exactly_99_percent_passes() -> None:
    assert gates.dual_write_success(99, 1, 0.99, DAY).passed


def test_dual_write_success_just_below_99_percent_fails() -> None:
    r = gates.dual_write_success(98_999, 1_001, 0.99, DAY)  # 98.999 %
    assert not r.passed and "1001 DynamoDB writes failed" in r.detail


def test_dual_write_success_with_no_writes_fails_instead_of_passing_vacuously() -> None:
    r = gates.dual_write_success(0, 0, 0.99, DAY)
    assert not r.passed and "no DynamoDB writes" in r.detail


def test_validation_error_rate_of_exactly_0_1_percent_fails() -> None:
    assert not gates.validation_error_rate(999, 1, 0.001, DAY, 1000).passed


def test_validation_error_rate_just_below_0_1_percent_passes() -> None:
    assert gates.validation_error_rate(1000, 1, 0.001, DAY, 1000).passed  # 1/1001


def test_validation_error_rate_needs_the_minimum_number_of_validations() -> None:
    r = gates.validation_error_rate(999, 0, 0.001, DAY, 1000)
    assert not r.passed and "only 999 validations" in r.detail


def test_validation_with_a_zero_minimum_still_needs_one_validation() -> None:
    assert not gates.validation_error_rate(0, 0, 0.001, DAY, 0).passed


def test_dynamodb_read_errors_below_threshold_pass_and_none_read_fails() -> None:
    assert gates.dynamodb_read_errors(10_000, 9, 0.001, DAY).passed
    assert not gates.dynamodb_read_errors(0, 0, 0.001, DAY).passed


def test_soak_time_passes_exactly_at_the_window() -> None:
    assert gates.soak_time(now=1000 + DAY, phase_since=1000, window_s=DAY, phase=2).passed
    assert not gates.soak_time(now=999 + DAY, phase_since=1000, window_s=DAY, phase=2).passed


def test_tables_exist_fails_naming_the_missing_ones_and_when_none_are_mapped() -> None:
    assert gates.tables_exist(["p-a", "p-b"], []).passed
    r = gates.tables_exist(["p-a", "p-b"], ["p-b"])
    assert not r.passed and "p-b" in r.detail
    assert not gates.tables_exist([], []).passed


@pytest.mark.parametrize(("doc", "ok"), [
    ({"ts": 1000.0, "group": "g"}, True),     # 60 s old: at the limit
    ({"ts": 999.0, "group": "g"}, False),     # 61 s old
    (None, False),
    ({"group": "g"}, False),
])
def test_writer_connected_needs_a_fresh_heartbeat(doc: dict[str, object] | None, ok: bool) -> None:
    assert gates.writer_connected(doc, now=1060.0, max_age_s=60).passed is ok


def test_backfill_complete_needs_the_marker_and_every_mapped_table() -> None:
    assert gates.backfill_complete({"complete": True, "tables": ["a.x", "a.y"]}, ["a.x", "a.y"]).passed
    assert not gates.backfill_complete({"complete": False}, ["a.x"]).passed
    assert not gates.backfill_complete(None, ["a.x"]).passed
    r = gates.backfill_complete({"complete": True, "tables": ["a.x"]}, ["a.x", "a.y"])
    assert not r.passed and "a.y" in r.measured


def reader(lag: float = 0, ts: float = 1000.0) -> dict[str, object]:
    return {"ts": ts, "lag_s": lag, "position": "f.1:4"}


def test_replication_lag_zero_passes_with_zero_lag_everywhere() -> None:
    assert gates.replication_lag_zero(reader(), 1010, 60, {"p.a.x": 0, "p.a.y": 0}).passed


@pytest.mark.parametrize(("doc", "lags", "why"), [
    (reader(lag=0.5), {"t": 0}, "reader lag"),
    (reader(ts=900), {"t": 0}, "heartbeat 110 s old"),
    (None, {"t": 0}, "no reader heartbeat"),
    (reader(), {"t": 0, "u": 3}, "writer 3 messages behind"),
    (reader(), None, "writer offsets unknown"),
])
def test_replication_lag_fails_on_any_lag_or_unknown(
    doc: dict[str, object] | None, lags: dict[str, int] | None, why: str,
) -> None:
    r = gates.replication_lag_zero(doc, 1010, 60, lags, "Kafka unreachable")
    assert not r.passed and why in r.measured


def test_the_dual_write_gate_names_the_latest_dead_letters_newest_first() -> None:
    letters = [{"table": f"t{i}", "key": f"id={i}", "reason": "item-too-large"} for i in range(7)]
    r = gates.dual_write_success(990, 7, 0.999, DAY, letters)
    assert not r.passed
    assert "dead letters: t6 id=6 (item-too-large), t5 id=5" in r.detail and "and 2 more" in r.detail
    assert "dead letters" not in gates.dual_write_success(990, 0, 0.99, DAY, letters).detail

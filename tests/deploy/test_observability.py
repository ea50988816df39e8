"""The Grafana dashboard and the Prometheus alert rules name only metrics the code exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docker" / "grafana" / "replicator.json"
ALERTS = ROOT / "docker" / "prometheus" / "alerts.yaml"
METRIC = re.compile(r"\breplicator_[a-z0-9_]+\b")


def exported() -> set[str]:
    """Every series name the product's metric classes can expose."""
    from consumers.reverse.metrics import ReverseMetrics
    from consumers.writer.metrics import WriterMetrics
    from replicator.backfill.runner import BackfillMetrics
    from replicator.client.metrics import ClientMetrics
    from replicator.phase.metrics import PhaseMetrics
    from replicator.reader.metrics import ReaderMetrics
    from validators.metrics import ValidatorMetrics

    names: set[str] = set()
    for cls in (ReverseMetrics, WriterMetrics, BackfillMetrics, ClientMetrics, PhaseMetrics, ReaderMetrics,
                ValidatorMetrics):
        registry = CollectorRegistry()
        cls(registry)  # type: ignore[operator]
        for family in registry.collect():
            suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"),
                        "summary": ("_count", "_sum")}.get(family.type, ("",))
            names.update(family.name + s for s in suffixes)
    return names


def expressions() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    out = [(f"panel {p['title']!r}", t["expr"]) for p in dash["panels"] for t in p["targets"]]
    rules = yaml.safe_load(ALERTS.read_text())
    out += [(f"alert {r['alert']}", r["expr"]) for g in rules["groups"] for r in g["rules"]]
    return out


def test_every_dashboard_and_alert_expression_names_an_exported_metric() -> None:
    known = exported()
    unknown = [(where, name) for where, expr in expressions() for name in METRIC.findall(expr)
               if name not in known]
    assert not unknown, unknown
    assert all(METRIC.search(expr) for _, expr in expressions()), "every expression reads a product metric"


def test_the_dashboard_has_the_guides_four_key_metrics_and_lag() -> None:
    titles = " | ".join(p["title"].lower() for p in json.loads(DASHBOARD.read_text())["panels"])
    for wanted in ("success rate", "read latency per store", "validation error rate", "consistency", "lag"):
        assert wanted in titles, wanted


def test_the_alerts_carry_the_guides_thresholds() -> None:
    rules: dict[str, Any] = {r["alert"]: r for g in yaml.safe_load(ALERTS.read_text())["groups"]
                             for r in g["rules"]}
    assert "< 0.99" in rules["DualWriteSuccessBelow99Percent"]["expr"]
    assert ">= 0.001" in rules["ValidationErrorRateAtLeast0.1Percent"]["expr"]
    assert {"ReplicationLagGrowing", "WriterLagGrowing", "DeadLetters"} <= set(rules)


def test_metric_names_follow_prometheus_conventions() -> None:
    for name in exported():
        base = re.sub(r"_(bucket|count|sum)$", "", name)
        assert re.fullmatch(r"replicator_[a-z0-9_]+", name), name
        assert not base.endswith(("_per_second", "_rate")) or base == "replicator_backfill_rows_per_second", \
            f"{name}: export a counter and let Prometheus compute the rate"

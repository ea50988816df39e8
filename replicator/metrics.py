"""Prometheus metrics: one way for every process.

Each role keeps its metrics in a small class that takes a ``CollectorRegistry`` (a fresh
one by default, so two instances in one test process never clash). A process serves its
roles' registries *and* the default registry, which holds the client library's
``process_*``, ``python_gc_*`` and ``python_info`` collectors, on one ``/metrics`` port.
Names carry their unit (``_seconds``, ``_total``, ``_items``), per STYLE.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric

__all__ = ["CollectorRegistry", "UnionRegistry", "serve_metrics"]


class UnionRegistry:
    """Read-only view of several registries as one, for the HTTP exporter."""

    def __init__(self, registries: Iterable[Any]) -> None:  # registries or their restricted views
        self._registries = list(registries)

    def collect(self) -> Iterator[Metric]:
        for registry in self._registries:
            yield from registry.collect()

    def restricted_registry(self, names: Iterable[str]) -> Any:
        wanted = list(names)
        return UnionRegistry(r.restricted_registry(wanted) for r in self._registries)


def serve_metrics(port: int, *registries: CollectorRegistry, addr: str = "0.0.0.0") -> None:  # noqa: S104
    """Serve ``registries`` plus the default registry on ``port`` (no-op when ``port`` is 0)."""
    if not port:
        return
    union = UnionRegistry([REGISTRY, *(r for r in registries if r is not REGISTRY)])
    start_http_server(port, addr=addr, registry=union)

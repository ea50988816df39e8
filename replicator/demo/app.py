"""What the demo needs of the sample application it drives, and what it reads from the client.

The application (``examples/shop``: an HTTP service on :mod:`replicator.client` and its load
generator) lives outside the product's packages, so the command injects it as a
:class:`SampleApp`; the story only knows these Protocols. The client's figures (validations,
reads by store) come from its Prometheus registry, read here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from replicator.client import Client
from replicator.demo.workload import ShopWorkload
from replicator.metrics import CollectorRegistry


class Service(Protocol):
    """A started application service."""

    @property
    def url(self) -> str: ...
    def stop(self) -> None: ...


class PhaseVisit(Protocol):
    """What the application's users saw during one visit of one phase."""

    @property
    def phase(self) -> int: ...
    @property
    def epoch(self) -> int: ...
    @property
    def requests(self) -> int: ...
    @property
    def reads(self) -> int: ...
    @property
    def writes(self) -> int: ...
    @property
    def changes(self) -> int: ...
    @property
    def misses(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def p50_ms(self) -> float: ...
    @property
    def p99_ms(self) -> float: ...
    @property
    def error_samples(self) -> tuple[str, ...]: ...
    @property
    def longest_write_ms(self) -> float: ...


class LoadFigures(Protocol):
    @property
    def visits(self) -> Sequence[PhaseVisit]: ...
    @property
    def requests(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def changes(self) -> int: ...
    def last(self, phase: int) -> PhaseVisit | None: ...


class Load(Protocol):
    """A load generator against the service: reads and writes on threads until stopped."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def pause_writes(self, timeout_s: float = ...) -> bool: ...
    def resume_writes(self) -> None: ...
    def report(self) -> LoadFigures: ...


@dataclass(frozen=True)
class SampleApp:
    """The injected application: ``serve(client)`` starts it, ``load(url, workload, rate, threads)``
    builds its (not yet started) load generator."""

    serve: Callable[[Client], Service]
    load: Callable[[str, ShopWorkload, float, int], Load]


# --------------------------------------------------------------------------- the client's figures


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, ...], float]:
    """The values of one sample name (e.g. ``..._total``, ``..._count``), by label values."""
    out: dict[tuple[str, ...], float] = {}
    for metric in registry.collect():
        for s in metric.samples:
            if s.name == name:
                out[tuple(s.labels.values())] = s.value
    return out


@dataclass(frozen=True)
class ClientFigures:
    """A snapshot of the client's counters; subtract two for what happened in between."""

    validations: dict[str, int]      # outcome -> count
    reads: dict[tuple[str, str], int]  # (store, op) -> count
    fallbacks: dict[str, int]        # reason -> reads served from MySQL in phase 4

    @classmethod
    def of(cls, registry: CollectorRegistry) -> ClientFigures:
        val = samples(registry, "replicator_client_validations_total")
        reads = samples(registry, "replicator_client_read_seconds_count")
        fall = samples(registry, "replicator_client_fallbacks_total")
        return cls({k[0]: int(v) for k, v in val.items()},
                   {(k[0], k[1]): int(v) for k, v in reads.items()},
                   {k[0]: int(v) for k, v in fall.items()})

    def since(self, before: ClientFigures) -> ClientFigures:
        return ClientFigures(
            {k: v - before.validations.get(k, 0) for k, v in self.validations.items()},
            {k: v - before.reads.get(k, 0) for k, v in self.reads.items()},
            {k: v - before.fallbacks.get(k, 0) for k, v in self.fallbacks.items()})

    def reads_from(self, store: str) -> int:
        return sum(n for (s, _), n in self.reads.items() if s == store)

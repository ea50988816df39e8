"""Prometheus metrics: one way for every process.

Each role keeps its metrics in a small class that takes a ``CollectorRegistry`` (a fresh
one by default, so two instances in one test process never clash). A process serves its
roles' registries *and* the default registry, which holds the client library's
``process_*``, ``python_gc_*`` and ``python_info`` collectors, on one ``/metrics`` port.
Names carry their unit (``_seconds``, ``_total``, ``_items``), per STYLE.md.

The same port answers ``/healthz`` and ``/readyz`` for Kubernetes probes. A process that hands
a :class:`Health` to :func:`serve_metrics` beats it from its main loop: ``/healthz`` then fails
(503) once the loop has been silent for ``max_silence_s``, even while this server's own thread
still answers, and ``/readyz`` tells whether the process says it is ready (connected, caught
up). Without a ``Health`` both answer 200 whenever the process serves at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import Metric

__all__ = ["CollectorRegistry", "Health", "UnionRegistry", "serve_metrics"]


class Health:
    """Liveness from a main loop's heartbeat, readiness as the process declares it."""

    def __init__(self, max_silence_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_silence_s = max_silence_s
        self._clock = clock
        self._last = clock()
        self._ready = False
        self._why = "starting"

    def beat(self) -> None:
        self._last = self._clock()

    def set_ready(self, ready: bool, why: str = "") -> None:
        self._ready, self._why = ready, why

    def live(self) -> tuple[bool, str]:
        silent = self._clock() - self._last
        if silent > self.max_silence_s:
            return False, f"main loop silent for {silent:.0f} s (limit {self.max_silence_s:.0f} s)"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        live, why = self.live()
        if not live:
            return False, why
        return (True, "ok") if self._ready else (False, self._why or "not ready")


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


def _handler(registry: Any, health: Health | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, why = (True, "ok") if health is None else (health.live() if path == "/healthz"
                                                               else health.ready())
                self._send(200 if ok else 503, (why + "\n").encode(), "text/plain; charset=utf-8")
            else:
                self._send(404, b"not found: /metrics, /healthz, /readyz\n", "text/plain; charset=utf-8")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # probes every few seconds: not worth a log line each

    return Handler


def serve_metrics(port: int, *registries: CollectorRegistry, addr: str = "0.0.0.0",  # noqa: S104
                  health: Health | None = None) -> ThreadingHTTPServer | None:
    """Serve ``registries`` plus the default registry on ``port`` with ``/healthz`` and ``/readyz``
    (no-op when ``port`` is 0); a daemon thread answers."""
    if not port:
        return None
    union = UnionRegistry([REGISTRY, *(r for r in registries if r is not REGISTRY)])
    server = ThreadingHTTPServer((addr, port), _handler(union, health))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server

"""The metrics port: /metrics, and /healthz and /readyz driven by a main loop's heartbeat."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

from prometheus_client import CollectorRegistry, Counter

from replicator.metrics import Health, serve_metrics
from replicator.testing import ManualClock


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_a_silent_main_loop_fails_healthz_while_metrics_still_answer() -> None:
    registry = CollectorRegistry()
    Counter("replicator_test_things_total", "things", registry=registry).inc(3)
    clock = ManualClock(100.0)
    health = Health(max_silence_s=30, clock=clock)
    server = serve_metrics(free_port(), registry, addr="127.0.0.1", health=health)
    assert server is not None
    port = server.server_address[1]
    try:
        assert get(port, "/healthz") == (200, "ok\n")
        assert get(port, "/readyz")[0] == 503, "not ready until the process says so"
        health.set_ready(True)
        assert get(port, "/readyz") == (200, "ok\n")
        clock.advance(31)
        code, why = get(port, "/healthz")
        assert code == 503 and "silent for 31 s" in why
        assert get(port, "/readyz")[0] == 503
        code, text = get(port, "/metrics")
        assert code == 200 and "replicator_test_things_total 3.0" in text
        health.beat()
        assert get(port, "/healthz")[0] == 200
        assert get(port, "/nothing")[0] == 404
    finally:
        server.shutdown()
        server.server_close()


def test_without_a_health_the_probes_answer_while_the_process_serves() -> None:
    server = serve_metrics(free_port(), CollectorRegistry(), addr="127.0.0.1")
    assert server is not None
    try:
        assert get(server.server_address[1], "/healthz")[0] == 200
        assert get(server.server_address[1], "/readyz")[0] == 200
    finally:
        server.shutdown()
        server.server_close()

"""The campaign's two proxies: toxiproxy on every process -> server link, and a DynamoDB fault proxy.

- :class:`Toxiproxy` runs ``toxiproxy-server`` (built by ``scripts/tools.py toxiproxy`` from the
  Go module proxy) on loopback and creates one proxy per link (``writer-a.dynamodb``,
  ``reader.mysql``, ...). A link is cut (the proxy disabled: connections reset, new ones refused),
  blackholed (a ``timeout`` toxic of 0: bytes stop flowing, nothing closes) or slowed (a
  ``latency`` toxic), and healed.
- :class:`DynamoFaultProxy` is a small HTTP proxy in front of DynamoDB Local: a TCP proxy cannot
  answer ``ProvisionedThroughputExceededException`` or a 500, this one does for a share of the
  requests while a storm lasts.

Kafka is not proxied: a broker tells its clients its own advertised address, so a client that
bootstrapped through a proxy talks to the broker directly afterwards. Kafka faults are broker
restarts (and the pauses and kills of its clients).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TOXIPROXY = ROOT / ".stack" / "tools" / "toxiproxy-server"


class ChaosSetupError(RuntimeError):
    """The campaign cannot start: a tool or a server it needs is missing (says which, and how)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Toxiproxy:
    """One ``toxiproxy-server`` on loopback and its proxies, by link name."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.links: dict[str, int] = {}  # link name -> listen port

    def start(self, timeout_s: float = 20.0) -> None:
        if not TOXIPROXY.exists():
            raise ChaosSetupError(f"{TOXIPROXY} is missing: run `python3 scripts/tools.py toxiproxy` "
                                  "(or `make chaos`, which builds it)")
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(TOXIPROXY), "-host", "127.0.0.1", "-port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._call("GET", "/version")
                return
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise ChaosSetupError(f"toxiproxy-server did not answer on {self.port}; "
                                          f"see {self.log_path}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback, our server
            text = resp.read()
        return json.loads(text) if text else None

    def link(self, name: str, upstream_port: int) -> int:
        """A proxy ``name`` to 127.0.0.1:``upstream_port``; returns the port to connect to."""
        if name in self.links:
            return self.links[name]
        for _ in range(5):  # a free port can be taken between the probe and the bind
            port = free_port()
            try:
                self._call("POST", "/proxies", {"name": name, "listen": f"127.0.0.1:{port}",
                                                "upstream": f"127.0.0.1:{upstream_port}", "enabled": True})
            except urllib.error.HTTPError as exc:
                if exc.code == 409:  # exists (a previous run): move it to this port
                    self._call("DELETE", f"/proxies/{name}")
                continue
            self.links[name] = port
            return port
        raise ChaosSetupError(f"toxiproxy could not listen for the link {name}")

    def remove_all(self) -> None:
        for name in list(self.links):
            # the server goes away with the run anyway
            with contextlib.suppress(OSError, urllib.error.URLError):
                self._call("DELETE", f"/proxies/{name}")
        self.links.clear()

    def cut(self, name: str) -> None:
        """Reset the link's connections and refuse new ones."""
        self._call("POST", f"/proxies/{name}", {"enabled": False})

    def blackhole(self, name: str) -> None:
        """Bytes stop flowing both ways; nothing is closed (a silent partition)."""
        for stream in ("upstream", "downstream"):
            self._call("POST", f"/proxies/{name}/toxics", {
                "name": f"hole-{stream}", "type": "timeout", "stream": stream, "toxicity": 1.0,
                "attributes": {"timeout": 0}})

    def slow(self, name: str, latency_ms: int, jitter_ms: int) -> None:
        self._call("POST", f"/proxies/{name}/toxics", {
            "name": "latency", "type": "latency", "stream": "downstream", "toxicity": 1.0,
            "attributes": {"latency": latency_ms, "jitter": jitter_ms}})

    def heal(self, name: str) -> None:
        """Enabled, and without toxics."""
        proxy = self._call("GET", f"/proxies/{name}")
        for toxic in proxy.get("toxics") or []:
            self._call("DELETE", f"/proxies/{name}/toxics/{toxic['name']}")
        if not proxy.get("enabled", True):
            self._call("POST", f"/proxies/{name}", {"enabled": True})

    def heal_all(self) -> None:
        for name in self.links:
            self.heal(name)


# --------------------------------------------------------------------------- DynamoDB HTTP faults

_THROTTLED = ("com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
              "chaos: the level of configured provisioned throughput for the table was exceeded")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-authorization", "proxy-authenticate"}


class DynamoFaultProxy:
    """HTTP in front of DynamoDB Local; while a storm lasts, a share of the requests is answered
    with a throttling error (HTTP 400) or a server error (500/503) instead of being forwarded."""

    def __init__(self, upstream_port: int, seed: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._storm: tuple[str, float] | None = None  # ("throttle" | "5xx", share of requests)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.answered: dict[str, int] = {"forwarded": 0, "throttle": 0, "5xx": 0, "client_gone": 0}
        self._server: ThreadingHTTPServer | None = None
        self._local = threading.local()
        self._upstreams: list[http.client.HTTPConnection] = []  # closed at stop()

    def start(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def handle(self) -> None:
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):  # the client went away (killed): counted
                    with proxy._lock:
                        proxy.answered["client_gone"] += 1

            def do_POST(self) -> None:
                proxy._handle(self)

            def do_GET(self) -> None:
                proxy._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, name="dynamodb-fault-proxy", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for conn in self._upstreams:
                conn.close()
            self._upstreams.clear()

    def storm(self, kind: str, share: float) -> None:
        with self._lock:
            self._storm = (kind, share)

    def calm(self) -> None:
        with self._lock:
            self._storm = None

    def _fault(self) -> str | None:
        with self._lock:
            if self._storm is None or self._rng.random() >= self._storm[1]:
                self.answered["forwarded"] += 1
                return None
            self.answered[self._storm[0]] += 1
            return self._storm[0]

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        fault = self._fault()
        if fault == "throttle":
            self._answer(req, 400, {"__type": _THROTTLED[0], "message": _THROTTLED[1]})
            return
        if fault == "5xx":
            status = 500 if self._rng.random() < 0.5 else 503
            kind = "InternalServerError" if status == 500 else "ServiceUnavailable"
            self._answer(req, status, {"__type": f"com.amazonaws.dynamodb.v20120810#{kind}",
                                       "message": "chaos: the server encountered an internal error"})
            return
        try:
            status, headers, data = self._forward(req, body)
        except (OSError, http.client.HTTPException):
            conn = getattr(self._local, "conn", None)
            if conn is not None:
                conn.close()
            self._local.conn = None
            self._answer(req, 503, {"__type": "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
                                    "message": "chaos proxy: DynamoDB Local did not answer"})
            return
        req.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                req.send_header(name, value)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    def _forward(self, req: BaseHTTPRequestHandler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
            self._local.conn = conn
            with self._lock:
                self._upstreams.append(conn)
        headers = {k: v for k, v in req.headers.items() if k.lower() not in _HOP_BY_HOP}
        conn.request(req.command, req.path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()

    @staticmethod
    def _answer(req: BaseHTTPRequestHandler, status: int, doc: dict[str, str]) -> None:
        data = json.dumps(doc).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/x-amz-json-1.0")
        req.send_header("x-amzn-RequestId", "chaos")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

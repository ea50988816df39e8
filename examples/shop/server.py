"""The shop's HTTP JSON API on the standard library's ``ThreadingHTTPServer``.

==================================  ==================================================
``GET /health``                     the client's phase snapshot: phase, epoch, flags
``POST /users``                     create a user -> 201 ``{"id": ...}``
``GET /users/<id>``                 one user
``PATCH /users/<id>``               change email, name, password, profile, status or id
``DELETE /users/<id>``              delete a user
``POST /orders``                    place an order with its items (and debit the user's
                                    balance) -> 201
``GET /users/<id>/orders``          the user's orders, newest first (``?limit=``, default
                                    50): the user's collection
``GET /users/<id>/orders/<order>``  one order of the user, with its items
==================================  ==================================================

Every answer is JSON and carries ``X-Migration-Phase`` and ``X-Migration-Epoch``: the client's
phase snapshot when the request arrived. Errors are ``{"error": code, "message": text}``:

====  ===============  ========================================================================
400   bad_request      malformed JSON or fields; a value the column cannot take
                       (``KeyShapeError``, ``UnmappableValueError``, MySQL refusing the value)
404   not_found        no such row or route
405   not_allowed      a known route with another method
409   duplicate        the primary key exists (``DuplicateKeyError``)
503   unavailable      a store is down or busy (``TransientError``): retry (``Retry-After``)
500   internal         anything else: logged here with its traceback, never sent to the caller
====  ===============  ========================================================================
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from examples.shop.service import BadRequest, ShopError, ShopService
from replicator.client import Client
from replicator.errors import (
    ClientUsageError,
    DuplicateKeyError,
    MappingError,
    ReplicatorError,
    StatementRejected,
    TransientError,
)

log = structlog.get_logger("examples.shop")

PHASE_HEADER = "X-Migration-Phase"
EPOCH_HEADER = "X-Migration-Epoch"
MAX_BODY_BYTES = 64 * 1024

Payload = dict[str, Any]
Headers = dict[str, str]


@dataclass(frozen=True)
class Answer:
    status: int
    body: Payload | None = None
    headers: Headers = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    params: dict[str, str]
    query: dict[str, list[str]]
    body: Payload


Route = Callable[[ShopService, Request], Answer]


# --------------------------------------------------------------------------- the routes


def _id(req: Request) -> int:
    raw = req.params["id"]
    if not raw.isdigit() or int(raw) < 1:
        raise BadRequest(f"a user id is a positive integer, got {raw!r}")
    return int(raw)


def _order_id(req: Request) -> int:
    raw = req.params["oid"]
    if not raw.isdigit() or int(raw) < 1:
        raise BadRequest(f"an order id is a positive integer, got {raw!r}")
    return int(raw)


def _health(svc: ShopService, req: Request) -> Answer:
    return Answer(200, svc.health())


def _create_user(svc: ShopService, req: Request) -> Answer:
    uid = svc.create_user(req.body)
    return Answer(201, {"id": uid}, {"Location": f"/users/{uid}"})


def _get_user(svc: ShopService, req: Request) -> Answer:
    return Answer(200, {"user": svc.get_user(_id(req))})


def _update_user(svc: ShopService, req: Request) -> Answer:
    uid = svc.update_user(_id(req), req.body)
    return Answer(200, {"id": uid}, {"Location": f"/users/{uid}"})


def _delete_user(svc: ShopService, req: Request) -> Answer:
    svc.delete_user(_id(req))
    return Answer(200, {"deleted": 1})


def _user_order(svc: ShopService, req: Request) -> Answer:
    return Answer(200, {"order": svc.get_order(_id(req), _order_id(req))})


def _place_order(svc: ShopService, req: Request) -> Answer:
    return Answer(201, {"order": svc.place_order(req.body)})


def _user_orders(svc: ShopService, req: Request) -> Answer:
    raw = req.query.get("limit", ["50"])[-1]
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise BadRequest(f"limit is an integer from 1 to 1000, got {raw!r}")
    return Answer(200, {"orders": svc.user_orders(_id(req), int(raw))})


ROUTES: list[tuple[str, re.Pattern[str], str, Route]] = [
    ("GET", re.compile(r"/health"), "health", _health),
    ("POST", re.compile(r"/users"), "users", _create_user),
    ("GET", re.compile(r"/users/(?P<id>[^/]+)"), "user", _get_user),
    ("PATCH", re.compile(r"/users/(?P<id>[^/]+)"), "user", _update_user),
    ("DELETE", re.compile(r"/users/(?P<id>[^/]+)"), "user", _delete_user),
    ("GET", re.compile(r"/users/(?P<id>[^/]+)/orders"), "user_orders", _user_orders),
    ("GET", re.compile(r"/users/(?P<id>[^/]+)/orders/(?P<oid>[^/]+)"), "user_order", _user_order),
    ("POST", re.compile(r"/orders"), "orders", _place_order),
]


def error_answer(exc: Exception) -> Answer:
    """The HTTP answer to an exception of the service or the client (never a traceback)."""
    if isinstance(exc, ShopError):
        return Answer(exc.status, {"error": exc.code, "message": str(exc)})
    if isinstance(exc, DuplicateKeyError):
        return Answer(409, {"error": "duplicate", "message": str(exc)})
    if isinstance(exc, ClientUsageError | MappingError | StatementRejected):
        return Answer(400, {"error": "bad_request", "message": str(exc)})
    if isinstance(exc, TransientError):
        return Answer(503, {"error": "unavailable", "message": str(exc)}, {"Retry-After": "1"})
    return Answer(500, {"error": "internal", "message": "internal error; see the service's log"})


# --------------------------------------------------------------------------- HTTP


class ShopMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter("shop_http_requests_total", "Requests answered, by route and status",
                                ["route", "status"], registry=self.registry)
        self.seconds = Histogram("shop_http_request_seconds", "Time to answer one request", ["route"],
                                 registry=self.registry)
        self.internal_errors = Counter("shop_http_internal_errors_total",
                                       "Requests that failed on an unexpected error (500)",
                                       registry=self.registry)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], service: ShopService, metrics: ShopMetrics) -> None:
        super().__init__(address, ShopHandler)
        self.service = service
        self.metrics = metrics


class ShopHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a load generator reuses its connections
    server_version = "shop/1"
    timeout = 60  # an idle keep-alive connection is closed after this
    server: _Server

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")  # no route takes PUT: a JSON 405 that names the allowed methods

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own refusals (malformed request line, unknown method) as JSON too."""
        self.close_connection = True
        self._send(code, {"error": "bad_request" if code < 500 else "not_supported",
                          "message": message or HTTPStatus(code).phrase}, {})

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http_request", client=self.address_string(), line=format % args)

    def _handle(self, method: str) -> None:
        t0 = time.perf_counter()
        state = self.server.service.client.phase  # the snapshot this request arrived under
        route, answer = self._answer(method)
        headers = {PHASE_HEADER: str(state.phase), EPOCH_HEADER: str(state.epoch), **answer.headers}
        status = self._send(answer.status, answer.body, headers)
        metrics = self.server.metrics
        metrics.requests.labels(route, str(status)).inc()
        metrics.seconds.labels(route).observe(time.perf_counter() - t0)

    def _answer(self, method: str) -> tuple[str, Answer]:
        url = urlsplit(self.path)
        allowed: list[str] = []
        for verb, pattern, name, handler in ROUTES:
            match = pattern.fullmatch(url.path)
            if match is None:
                continue
            allowed.append(verb)
            if verb != method:
                continue
            try:
                body = self._body()
                request = Request(match.groupdict(), parse_qs(url.query), body)
                return name, handler(self.server.service, request)
            except Exception as exc:  # every error becomes an answer; unexpected ones are logged
                return name, self._error(name, exc)
        self._discard_body()
        if allowed:
            return "unknown", Answer(405, {"error": "not_allowed", "message": f"{method} {url.path}: "
                                           f"allowed {', '.join(allowed)}"}, {"Allow": ", ".join(allowed)})
        return "unknown", Answer(404, {"error": "not_found", "message": f"no route {url.path}"})

    def _error(self, route: str, exc: Exception) -> Answer:
        answer = error_answer(exc)
        if answer.status == 500:
            self.server.metrics.internal_errors.inc()
            log.exception("shop_request_failed", route=route, error=type(exc).__name__)
        elif answer.status == 503:
            log.warning("shop_store_unavailable", route=route, error=str(exc))
        elif isinstance(exc, ReplicatorError):
            log.info("shop_request_refused", route=route, status=answer.status, error=str(exc))
        return answer

    def _body(self) -> Payload:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise BadRequest("send the body with a Content-Length, not chunked")
        raw = self.headers.get("Content-Length", "0")
        if not raw.isdigit():
            self.close_connection = True
            raise BadRequest(f"bad Content-Length {raw!r}")
        length = int(raw)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise BadRequest(f"the body is over {MAX_BODY_BYTES} bytes")
        if length == 0:
            return {}
        data = self.rfile.read(length)
        try:
            body = json.loads(data)
        except ValueError:
            raise BadRequest("the body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    def _discard_body(self) -> None:
        raw = self.headers.get("Content-Length", "0")
        if raw.isdigit() and int(raw) <= MAX_BODY_BYTES:
            self.rfile.read(int(raw))
        elif raw != "0":
            self.close_connection = True

    def _send(self, status: int, body: Payload | None, headers: Mapping[str, str]) -> int:
        """Write the answer; returns the status sent."""
        try:
            data = json.dumps(body, ensure_ascii=False).encode() if body is not None else b""
        except (TypeError, ValueError) as exc:  # a value JSON cannot carry: a bug here, not the caller's
            self.server.metrics.internal_errors.inc()
            log.exception("shop_response_not_encoded", status=status, error=str(exc))
            status, data = 500, b'{"error": "internal", "message": "internal error; see the service\'s log"}'
        try:
            self.send_response(status, HTTPStatus(status).phrase)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError as exc:  # the caller went away: nothing to answer to
            log.debug("shop_response_not_sent", status=status, error=str(exc))
            self.close_connection = True
        return status


class ShopServer:
    """The HTTP server on a thread: ``start()``, ``url``, ``stop()`` (or a context manager)."""

    def __init__(self, service: ShopService, host: str = "127.0.0.1", port: int = 0,
                 registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.host, self.port = host, port
        self.metrics = ShopMetrics(registry)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the shop server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._server = _Server((self.host, self.port), self.service, self.metrics)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="shop-http", daemon=True)
        self._thread.start()
        log.info("shop_listening", url=self.url, phase=self.service.client.phase.phase)

    def stop(self, timeout_s: float = 10.0) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout_s)
        self._server = self._thread = None

    def __enter__(self) -> ShopServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(client: Client, database: str | None = None, host: str = "127.0.0.1", port: int = 0) -> ShopServer:
    """A started shop server on ``client`` (the demo's entry point; port 0: any free port)."""
    server = ShopServer(ShopService(client, database), host, port)
    server.start()
    return server

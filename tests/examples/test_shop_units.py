"""The shop's HTTP layer and load generator without the stack: a stand-in service behind the real server."""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from examples.shop.load import Call, LoadGenerator, call_for, outcome, percentile
from examples.shop.server import EPOCH_HEADER, PHASE_HEADER, ShopServer, error_answer
from examples.shop.service import BadRequest, NotFound
from replicator.control import PhaseState
from replicator.demo.workload import (
    DeleteUser,
    InsertUser,
    OrderLine,
    PlaceOrder,
    RekeyUser,
    ShopWorkload,
    TouchUser,
)
from replicator.errors import (
    DuplicateKeyError,
    KeyShapeError,
    SourceUnavailable,
    StatementRejected,
    TargetUnavailable,
    UnmappableValueError,
)


@dataclass
class FakeClient:
    phase: PhaseState = field(default_factory=PhaseState)
    name: str = "fake"


class FakeService:
    """Answers like the shop; ``fail`` makes every use case raise it; records the calls made."""

    def __init__(self) -> None:
        self.client = FakeClient()
        self.fail: Exception | None = None
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def _called(self, what: str) -> None:
        with self.lock:
            self.calls.append(what)
        if self.fail is not None:
            raise self.fail

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "phase": self.client.phase.phase, "epoch": self.client.phase.epoch}

    def create_user(self, body: dict[str, Any]) -> int:
        self._called("create_user")
        return int(body.get("id", 1))

    def get_user(self, user_id: int) -> dict[str, Any]:
        self._called("get_user")
        if user_id > 1000:
            raise NotFound(f"no user {user_id}")
        return {"id": user_id}

    def update_user(self, user_id: int, body: dict[str, Any]) -> int:
        self._called("update_user")
        return int(body.get("id", user_id))

    def delete_user(self, user_id: int) -> None:
        self._called("delete_user")

    def place_order(self, body: dict[str, Any]) -> dict[str, Any]:
        self._called("place_order")
        return {"id": body.get("id")}

    def user_orders(self, user_id: int, limit: int = 50) -> list[dict[str, Any]]:
        self._called("user_orders")
        return []

    def get_order(self, user_id: int, order_id: int) -> dict[str, Any]:
        self._called("get_order")
        return {"id": order_id, "user_id": user_id, "items": []}


@pytest.fixture()
def fake() -> FakeService:
    return FakeService()


@pytest.fixture()
def server(fake: FakeService) -> Iterator[ShopServer]:
    srv = ShopServer(fake)  # type: ignore[arg-type]
    srv.start()
    yield srv
    srv.stop()


def request(srv: ShopServer, method: str, path: str, body: Any = None,
            raw: bytes | None = None) -> tuple[int, dict[str, Any], http.client.HTTPResponse]:
    host, port = srv.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    return resp.status, json.loads(payload) if payload else {}, resp


# --------------------------------------------------------------------------- errors and routes


@pytest.mark.parametrize(("exc", "status", "code"), [
    (NotFound("no user 5"), 404, "not_found"),
    (BadRequest("field 'email' is required"), 400, "bad_request"),
    (DuplicateKeyError("Duplicate entry '5' for key 'PRIMARY'", code=1062), 409, "duplicate"),
    (KeyShapeError("the key must hold exactly the primary-key columns"), 400, "bad_request"),
    (UnmappableValueError("value 5 does not fit a varchar(120) column"), 400, "bad_request"),
    (StatementRejected("Data too long for column 'email'", code=1406), 400, "bad_request"),
    (SourceUnavailable("MySQL is down"), 503, "unavailable"),
    (TargetUnavailable("DynamoDB throttled", code="ThrottlingException"), 503, "unavailable"),
])
def test_each_error_maps_to_its_status_with_a_json_body(server: ShopServer, fake: FakeService,
                                                         exc: Exception, status: int, code: str) -> None:
    fake.fail = exc
    got, body, resp = request(server, "GET", "/users/5")
    assert (got, body["error"]) == (status, code)
    assert body["message"] == str(exc)
    assert resp.getheader("Content-Type") == "application/json"
    assert (resp.getheader("Retry-After") == "1") == (status == 503)


def test_an_unexpected_error_is_a_500_without_its_text_or_traceback(server: ShopServer,
                                                                   fake: FakeService) -> None:
    fake.fail = RuntimeError("secret internals")
    status, body, _ = request(server, "POST", "/users", {"email": "a@b.c"})
    assert status == 500 and body == {"error": "internal", "message": "internal error; see the service's log"}
    assert server.metrics.registry.get_sample_value("shop_http_internal_errors_total") == 1


def test_every_answer_carries_the_clients_phase_and_epoch(server: ShopServer, fake: FakeService) -> None:
    fake.client.phase = PhaseState(phase=3, epoch=7)
    for method, path in (("GET", "/health"), ("GET", "/users/5000"), ("GET", "/nope")):
        _, _, resp = request(server, method, path)
        assert (resp.getheader(PHASE_HEADER), resp.getheader(EPOCH_HEADER)) == ("3", "7"), path


def test_the_health_endpoint_reports_the_phase_snapshot(server: ShopServer, fake: FakeService) -> None:
    fake.client.phase = PhaseState(phase=4, epoch=12)
    assert request(server, "GET", "/health")[:2] == (200, {"status": "ok", "phase": 4, "epoch": 12})


@pytest.mark.parametrize(("method", "path", "raw", "status", "code"), [
    ("POST", "/users", b"{not json", 400, "bad_request"),
    ("POST", "/users", b"[1, 2]", 400, "bad_request"),
    ("GET", "/users/abc", None, 400, "bad_request"),
    ("GET", "/users/0", None, 400, "bad_request"),
    ("GET", "/users/5/orders?limit=0", None, 400, "bad_request"),
    ("GET", "/users/5/orders/x", None, 400, "bad_request"),
    ("GET", "/users/5/orders/7/items", None, 404, "not_found"),
    ("GET", "/nope", None, 404, "not_found"),
    ("PUT", "/users/5", b"{}", 405, "not_allowed"),
    ("POST", "/users/5", b"{}", 405, "not_allowed"),
])
def test_malformed_requests_answer_json_errors(server: ShopServer, method: str, path: str, raw: bytes | None,
                                               status: int, code: str) -> None:
    got, body, _ = request(server, method, path, raw=raw)
    assert (got, body["error"]) == (status, code), body


def test_a_method_the_stdlib_does_not_know_is_refused_in_json(server: ShopServer) -> None:
    status, body, _ = request(server, "OPTIONS", "/users")
    assert status == 501 and body["error"] == "not_supported"


def test_creates_answer_201_with_the_location(server: ShopServer) -> None:
    status, body, resp = request(server, "POST", "/users", {"id": 42, "email": "a@b.c", "password": "x"})
    assert (status, body, resp.getheader("Location")) == (201, {"id": 42}, "/users/42")


def test_error_answer_never_carries_an_unknown_exceptions_text() -> None:
    assert "boom" not in json.dumps(error_answer(ValueError("boom")).body)


# --------------------------------------------------------------------------- the load generator


def test_each_workload_operation_is_one_api_call() -> None:
    assert call_for(InsertUser(7, "u7@x", "U", "pw", "0", '{"a": 1}')) == Call(
        "write", "POST", "/users",
        {"id": 7, "email": "u7@x", "name": "U", "password": "pw", "balance": "0", "profile": {"a": 1}})
    assert call_for(TouchUser(7, 3)) == Call("write", "PATCH", "/users/7", {"profile": {"visits": 3}})
    assert call_for(PlaceOrder(9, 7, (OrderLine("A-1", 2, "0.75"),))) == Call(
        "write", "POST", "/orders",
        {"id": 9, "user_id": 7, "items": [{"sku": "A-1", "qty": 2, "price": "0.75"}], "note": None})
    assert call_for(DeleteUser(7)) == Call("write", "DELETE", "/users/7")
    assert call_for(RekeyUser(7, 8)) == Call("write", "PATCH", "/users/7", {"id": 8})


def test_404_and_409_are_expected_answers_and_the_rest_errors() -> None:
    assert [outcome(s) for s in (200, 201, 404, 409, 400, 500, 503)] == [
        "ok", "ok", "miss", "conflict", "error", "error", "error"]


def test_percentiles_are_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile([], 0.5)) == (50.0, 99.0, 0.0)


def test_answers_are_filed_under_the_phase_the_service_said(server: ShopServer, fake: FakeService) -> None:
    gen = LoadGenerator(server.url, threads=4, rate=200, workload=ShopWorkload(random.Random(1), 101), seed=1)
    gen.start()
    try:
        for phase, epoch in ((2, 1), (3, 2), (4, 3), (3, 4)):
            fake.client.phase = PhaseState(phase=phase, epoch=epoch)
            _wait_for(lambda e=epoch: _requests_in(gen, e) >= 20)
    finally:
        gen.stop()
    report = gen.report()
    assert [(v.phase, v.epoch) for v in report.visits if v.epoch >= 1] == [(2, 1), (3, 2), (4, 3), (3, 4)]
    assert report.errors == 0 and report.requests == sum(v.requests for v in report.visits)
    assert all(v.p99_ms >= v.p50_ms > 0 for v in report.visits)


def test_errors_are_counted_with_samples(server: ShopServer, fake: FakeService) -> None:
    fake.fail = SourceUnavailable("MySQL is down")
    gen = LoadGenerator(server.url, threads=2, rate=100, seed=2)
    gen.start()
    try:
        _wait_for(lambda: gen.report().errors >= 10)
    finally:
        gen.stop()
    report = gen.report()
    assert report.errors == report.requests - sum(v.misses for v in report.visits)
    assert "503" in report.visits[0].error_samples[0] and "MySQL is down" in report.visits[0].error_samples[0]
    assert "errors" in report.format()


def test_paused_writes_leave_reads_only(server: ShopServer, fake: FakeService) -> None:
    gen = LoadGenerator(server.url, threads=4, rate=300, read_share=0.2, seed=3)
    gen.start()
    try:
        _wait_for(lambda: gen.report().requests >= 30)
        assert gen.pause_writes(timeout_s=5)
        with fake.lock:
            fake.calls.clear()
        _wait_for(lambda: len(fake.calls) >= 30)
        with fake.lock:
            paused = Counter(fake.calls)
        gen.resume_writes()
        _wait_for(lambda: _writes(fake) > 0)
    finally:
        gen.stop()
    assert set(paused) <= READS, paused


def test_reads_ask_for_users_their_orders_and_single_orders_of_their_owners() -> None:
    gen = LoadGenerator("http://127.0.0.1:9", read_share=1.0, workload=ShopWorkload(random.Random(6), 101),
                        seed=6)
    paths = [gen._next_call().path for _ in range(2000)]  # never started: no request is sent
    kinds = Counter(re.sub(r"\d+", "N", p) for p in paths)
    assert kinds.keys() == {"/users/N", "/users/N/orders?limit=N", "/users/N/orders/N"}, kinds
    for path in paths:  # the seed's order i belongs to user i % 100 + 1
        if m := re.fullmatch(r"/users/(\d+)/orders/(\d+)", path):
            assert int(m.group(1)) == int(m.group(2)) % 100 + 1, path


READS = {"get_user", "user_orders", "get_order"}


def _writes(fake: FakeService) -> int:
    with fake.lock:
        return sum(1 for c in fake.calls if c not in READS)


def _requests_in(gen: LoadGenerator, epoch: int) -> int:
    return sum(v.requests for v in gen.report().visits if v.epoch == epoch)


def _wait_for(cond: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)

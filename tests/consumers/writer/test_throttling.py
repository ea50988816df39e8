"""Throttling and 5xx injected in front of the real DynamoDB Local: nothing lost, no early commit."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from consumers.writer.applier import make_client
from tests.consumers.conftest import expected_table, random_stream, scan, table_state

pytestmark = pytest.mark.integration

INJECTED = ("ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
            "InternalServerError")


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


def inject_failures(client: Any, rate: float, seed: int) -> Counter[str]:
    """Answer a fraction of the writer's DynamoDB calls with a throttling or 5xx error, unsent."""
    rng, lock, injected = random.Random(seed), threading.Lock(), Counter[str]()

    def before_send(request: Any, **_: Any) -> AWSResponse | None:
        with lock:
            if rng.random() >= rate:
                return None
            code = rng.choice(INJECTED)
            injected[code] += 1
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected"})
        return AWSResponse(request.url, 500 if code == "InternalServerError" else 400,
                           {"x-amzn-requestid": "injected", "content-type": "application/x-amz-json-1.0"},
                           _Body(body.encode()))

    for op in ("TransactWriteItems", "PutItem"):
        client.meta.events.register(f"before-send.dynamodb.{op}", before_send)
    return injected


def test_throttled_writes_are_retried_until_applied_and_offsets_never_run_ahead(
        writer_env: Any, in_process_writer: Any, dynamodb: Any) -> None:
    client = make_client(writer_env.settings)
    injected = inject_failures(client, rate=0.4, seed=11)
    w = in_process_writer(client, max_batch=60)
    early: list[str] = []
    real_commit = w.writer.consumer.commit

    def checked_commit(offsets: dict[tuple[str, int], int]) -> None:
        # Every event below a committed offset must already be in DynamoDB (this version or newer).
        stored = {k: int(i["_version"]["N"]) for k, i in scan(dynamodb, writer_env.table).items()}
        for (_, partition), upto in offsets.items():
            for (p, off), e in writer_env.at_offset.items():
                if p == partition and off < upto and stored.get(int(e.pk["id"]), -1) < e.version:
                    early.append(f"p{p}@{off} v{e.version}")
        real_commit(offsets)

    w.writer.consumer.commit = checked_commit
    stream = random_stream(writer_env.db, keys=300, events=600, seed=5)
    writer_env.produce(stream)
    w.run_until_consumed(len(stream))
    retried = sum(s.value for m in w.metrics.retries.collect() for s in m.samples
                  if s.name.endswith("_total"))
    assert sum(injected.values()) > 0 and retried == sum(injected.values())  # really injected, all retried
    assert early == []
    assert table_state(scan(dynamodb, writer_env.table)) == expected_table(stream)

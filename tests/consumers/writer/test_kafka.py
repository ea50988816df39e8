"""Pure parts of the Kafka adapters: the dead-letter message and the lag read from statistics."""

from __future__ import annotations

import base64

import orjson

from consumers.writer.batch import DeadLetter, RawMessage
from consumers.writer.kafka import consumer_lag, dead_letter_value


def test_a_dead_letter_carries_the_error_the_source_and_the_original_bytes() -> None:
    msg = RawMessage("cdc.shop.users", 2, 41, b"key", b"\x00raw")
    doc = orjson.loads(dead_letter_value(DeadLetter(msg, "BadEventError", "not JSON", "shop.users", "id=1",
                                                    "not-json", 7)))
    assert doc["error"] == {"type": "BadEventError", "message": "not JSON", "table": "shop.users",
                            "key": "id=1", "reason": "not-json", "version": 7}
    assert doc["source"] == {"topic": "cdc.shop.users", "partition": 2, "offset": 41}
    assert base64.b64decode(doc["original_value"]) == b"\x00raw"


def test_consumer_lag_sums_fetched_partitions_and_ignores_unknown_lag() -> None:
    stats = {"topics": {"cdc.shop.users": {"partitions": {
        "0": {"fetch_state": "active", "consumer_lag": 5},
        "1": {"fetch_state": "active", "consumer_lag": -1},
        "2": {"fetch_state": "none", "consumer_lag": 9},
        "-1": {"fetch_state": "none", "consumer_lag": 3},
    }}}}
    assert consumer_lag(orjson.dumps(stats).decode()) == 5

"""Control store on Redis: every key and the change channel live under ``<namespace>:``.

Layout (``ns`` = ``settings.namespace``)::

    ns:phase                    hash {epoch, doc}  -- doc is the JSON phase document (flags included)
    ns:phase:history            list of JSON history entries, oldest first (RPUSH only)
    ns:phase:changes            pub/sub channel; the new epoch is published on every change
    ns:counter:<name>:<hour>    hash minute-bucket -> count, expiring after the retention
    ns:markers                  hash marker name -> JSON document

A change is one Lua script (check epoch, write the document, append history, publish), so it is
atomic: two concurrent operators cannot both win and the state is never half-written.
"""

from __future__ import annotations

import time
from typing import Any, cast

import orjson
import structlog

from replicator.adapters.redis import Redis, close_quietly, redacted, redis_client, redis_errors
from replicator.control.state import BUCKET_S, HistoryEntry, PhaseState, bucket_of, buckets_between
from replicator.errors import ControlStoreUnavailable, EpochConflict

log = structlog.get_logger(__name__)

_CAS_SCRIPT = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
if cur ~= tonumber(ARGV[1]) then
  return {0, cur}
end
redis.call('HSET', KEYS[1], 'epoch', ARGV[2], 'doc', ARGV[3])
redis.call('RPUSH', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[2])
return {1, tonumber(ARGV[2])}
"""

_BUCKETS_PER_KEY = 60  # one hash per hour of minute buckets


class RedisControlStore:
    def __init__(
        self, url: str, namespace: str, *, retention_s: float, socket_timeout_s: float = 5.0,
    ) -> None:
        self._url = url
        self._ns = namespace
        self._retention_s = int(retention_s)
        self._socket_timeout_s = socket_timeout_s
        self._client: Redis | None = None
        self._pubsub: Any = None
        self.phase_key = f"{namespace}:phase"
        self.history_key = f"{namespace}:phase:history"
        self.channel = f"{namespace}:phase:changes"
        self.markers_key = f"{namespace}:markers"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._client is not None:
            return
        self._client = redis_client(self._url, timeout_s=self._socket_timeout_s)
        with redis_errors(f"connecting to {redacted(self._url)}"):
            self._client.ping()

    def close(self) -> None:
        self._drop_pubsub()
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> RedisControlStore:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _r(self) -> Redis:
        if self._client is None:
            raise RuntimeError("RedisControlStore used before start()")
        return self._client

    # ------------------------------------------------------------------ phase
    def get_phase(self) -> PhaseState:
        with redis_errors("reading the phase"):
            doc = cast("str | None", self._r.hget(self.phase_key, "doc"))
        return PhaseState() if doc is None else PhaseState.from_doc(orjson.loads(doc))

    def compare_and_set(self, new: PhaseState, entry: HistoryEntry) -> None:
        expected = new.epoch - 1
        with redis_errors("changing the phase"):
            ok, actual = cast("list[int]", self._r.eval(
                _CAS_SCRIPT, 2, self.phase_key, self.history_key,
                str(expected), str(new.epoch), orjson.dumps(new.to_doc()).decode(),
                orjson.dumps(entry.to_doc()).decode(), self.channel,
            ))
        if not ok:
            raise EpochConflict(expected, int(actual))

    def history(self) -> list[HistoryEntry]:
        with redis_errors("reading the phase history"):
            items = cast("list[str]", self._r.lrange(self.history_key, 0, -1))
        return [HistoryEntry.from_doc(orjson.loads(i)) for i in items]

    def wait_for_change(self, known_epoch: int, timeout: float) -> PhaseState | None:
        deadline = time.monotonic() + timeout
        try:
            with redis_errors("watching the phase channel"):
                return self._wait(known_epoch, deadline)
        except ControlStoreUnavailable:
            self._drop_pubsub()
            raise

    def _wait(self, known_epoch: int, deadline: float) -> PhaseState | None:
        if self._pubsub is None:
            # Subscribe before reading, so a change between the read and the wait is not missed.
            ps = self._r.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
            ps.subscribe(self.channel)
            self._pubsub = ps
        state = self.get_phase()
        while state.epoch == known_epoch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            msg = self._pubsub.get_message(timeout=remaining)
            if msg is not None:
                state = self.get_phase()
        return state

    def _drop_pubsub(self) -> None:
        if self._pubsub is not None:
            close_quietly(self._pubsub)
            self._pubsub = None

    # ------------------------------------------------------------------ counters
    def _counter_key(self, name: str, bucket: int) -> str:
        return f"{self._ns}:counter:{name}:{bucket // _BUCKETS_PER_KEY}"

    def incr(self, name: str, amount: int = 1, at: float | None = None) -> None:
        self.incr_many({name: amount}, at)

    def incr_many(self, amounts: dict[str, int], at: float | None = None) -> None:
        bucket = bucket_of(time.time() if at is None else at)
        pipe = self._r.pipeline(transaction=False)
        for name, amount in amounts.items():
            if amount == 0:
                continue
            key = self._counter_key(name, bucket)
            pipe.hincrby(key, str(bucket), amount)
            pipe.expire(key, self._retention_s + _BUCKETS_PER_KEY * BUCKET_S)
        with redis_errors("counting"):
            pipe.execute()

    def window_sum(self, name: str, since: float, until: float) -> int:
        buckets = buckets_between(since, until)
        if not buckets:
            return 0
        keys = sorted({self._counter_key(name, b) for b in buckets})
        pipe = self._r.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        with redis_errors("summing a counter"):
            hashes = cast("list[dict[str, str]]", pipe.execute())
        lo, hi = buckets.start, buckets.stop - 1
        return sum(int(v) for h in hashes for b, v in h.items() if lo <= int(b) <= hi)

    # ------------------------------------------------------------------ markers
    def put_marker(self, name: str, doc: dict[str, Any]) -> None:
        with redis_errors("writing a marker"):
            self._r.hset(self.markers_key, name, orjson.dumps(doc).decode())

    def get_marker(self, name: str) -> dict[str, Any] | None:
        with redis_errors("reading a marker"):
            raw = cast("str | None", self._r.hget(self.markers_key, name))
        return None if raw is None else cast("dict[str, Any]", orjson.loads(raw))

    def delete_marker(self, name: str) -> None:
        with redis_errors("deleting a marker"):
            self._r.hdel(self.markers_key, name)

    def list_markers(self, prefix: str) -> dict[str, dict[str, Any]]:
        with redis_errors("listing markers"):
            raw = cast("dict[str, str]", self._r.hgetall(self.markers_key))
        return {k: orjson.loads(v) for k, v in sorted(raw.items()) if k.startswith(prefix)}


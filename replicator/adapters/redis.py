"""The door to Redis (redis-py): one client factory, one error translation.

Redis holds the control store (phase document, history, gate counters, markers). Every
Redis failure is :class:`ControlStoreUnavailable`: long-running processes keep their last
known phase and retry; the ``phase`` CLI stops with exit 2 and nothing written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import redis

from replicator.errors import ControlStoreUnavailable

__all__ = ["Redis", "redacted", "redis_client", "redis_errors"]

Redis = redis.Redis


def redacted(url: str) -> str:
    """The URL without a password, for messages."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def redis_client(url: str, *, timeout_s: float = 5.0, decode_responses: bool = True) -> Redis:
    """A client for ``url`` (no I/O yet: the first command connects)."""
    with redis_errors(f"configuring the client for {redacted(url)}"):
        return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                    decode_responses=decode_responses)


@contextmanager
def redis_errors(what: str) -> Iterator[None]:
    """Translate redis-py exceptions raised inside the block; ``what`` says what was being done."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        raise ControlStoreUnavailable(f"control store (Redis) unreachable while {what}: {exc}; check "
                                      "control.redis_url (REPLICATOR_CONTROL__REDIS_URL) and that Redis "
                                      "runs") from exc
    except redis.ResponseError as exc:
        auth = any(w in str(exc).upper() for w in ("AUTH", "WRONGPASS", "NOPERM"))
        hint = ("; check the user and password in control.redis_url (REPLICATOR_CONTROL__REDIS_URL)"
                if auth else "")
        raise ControlStoreUnavailable(f"control store (Redis) refused {what}: {exc}{hint}") from exc
    except (redis.RedisError, ValueError) as exc:  # ValueError: a malformed redis:// URL
        raise ControlStoreUnavailable(f"control store (Redis) failed while {what}: {exc}") from exc


def close_quietly(resource: Any) -> None:
    """Close a client or pub/sub whose connection may already be gone."""
    with suppress(redis.RedisError, OSError):
        resource.close()

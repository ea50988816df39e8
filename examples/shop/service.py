"""The shop's use cases, written against :mod:`replicator.client` and nothing else.

Users and their orders, on the demo shop's schema (:data:`replicator.demo.workload.SCHEMA`).
Every read and write goes through the client, so the service runs unchanged in every phase
of the migration: the client decides which store answers. Errors the caller made are
:class:`BadRequest` / :class:`NotFound`; the client's own errors (:mod:`replicator.errors`)
pass through for the HTTP layer to map.

A balance is money: an order debits its total from the user's balance in the same
transaction as the order's insert. The client offers no read inside a transaction, so the
balance is read first and written back under a per-user lock; that serialises the orders of
one user within this process. Several processes of this service would need an optimistic
check instead (and the client, in phase 5, retries lost version conditions itself).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import threading
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from replicator.client import Client, Table
from replicator.errors import ConfigError
from replicator.settings import Settings

STATUSES = ("active", "locked")
#: Fields an application may send; ``password`` is stored as its SHA-256 (``password_hash``).
CREATE_FIELDS = frozenset({"id", "email", "name", "password", "balance", "profile", "status"})
UPDATE_FIELDS = frozenset({"id", "email", "name", "password", "profile", "status"})
ORDER_FIELDS = frozenset({"id", "user_id", "total", "note"})
#: Ids the service allocates when the caller sends none: above any seeded id, JSON-safe.
_ALLOCATED_IDS = (2**40, 2**53)
_LOCK_STRIPES = 64
BY_USER = "by_user"  # the access pattern of a user's orders (tables[].indexes)


class ShopError(Exception):
    """A request the service refuses; ``status`` and ``code`` are what the HTTP layer answers."""

    status = 500
    code = "internal"


class BadRequest(ShopError):
    status = 400
    code = "bad_request"


class NotFound(ShopError):
    status = 404
    code = "not_found"


def shop_tables(settings: Settings, database: str | None = None) -> tuple[str, str]:
    """The ``(users, orders)`` sources of the shop in the mapping (``database`` when given)."""
    sources = {t.source for t in settings.tables}
    if database is not None:
        candidates = [database]
    else:
        candidates = sorted({s.split(".")[0] for s in sources
                             if s.endswith(".users") and s.replace(".users", ".orders") in sources})
    found = [(f"{db}.users", f"{db}.orders") for db in candidates
             if {f"{db}.users", f"{db}.orders"} <= sources]
    if len(found) != 1:
        mapped = ", ".join(sorted(sources)) or "none"
        which = f"for {database}" if database else "of exactly one database"
        raise ConfigError(f"the configuration must map <database>.users and <database>.orders ({which}); "
                          f"mapped: {mapped}")
    return found[0]


def utc_now(fsp: int) -> dt.datetime:
    """Now in UTC, naive, with ``fsp`` fractional digits (the column's precision)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    step = 10 ** (6 - fsp)
    return now.replace(microsecond=now.microsecond // step * step)


def password_hash(password: str) -> bytes:
    """What the shop stores in ``users.password_hash`` (BINARY(32)): the SHA-256 of the password.

    A real service would use a slow, salted hash; the demo schema's 32 bytes fit SHA-256.
    """
    return hashlib.sha256(password.encode()).digest()


class ShopService:
    """The use cases; thread-safe (the client is shared by the HTTP server's threads)."""

    def __init__(self, client: Client, database: str | None = None) -> None:
        self.client = client
        users, orders = shop_tables(client.settings, database)
        self.users: Table = client.table(users)
        self.orders: Table = client.table(orders)
        if not any(ix.name == BY_USER for ix in self.orders.mapper.indexes):
            raise ConfigError(f"the shop lists a user's orders by the access pattern {BY_USER!r}: declare "
                              f"it in tables[source={orders}].indexes as "
                              f"{{name: {BY_USER}, pk: user_id, sk: placed_at}}")
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]

    # ----------------------------------------------------------------- health

    def health(self) -> dict[str, Any]:
        state = self.client.phase
        return {"status": "ok", "name": self.client.name, "phase": state.phase, "epoch": state.epoch,
                "phase_name": state.name, "flags": state.flags()}

    # ----------------------------------------------------------------- users

    def create_user(self, body: Mapping[str, Any]) -> int:
        _only(body, CREATE_FIELDS)
        row: dict[str, Any] = {
            "id": _user_id(body["id"]) if body.get("id") is not None else _allocate(),
            "email": _required(body, "email"),
            "name": body.get("name"),
            "password_hash": password_hash(_text(_required(body, "password"), "password")),
            "balance": _money(body.get("balance", "0"), "balance", allow_zero=True),
            "created_at": utc_now(6),
            "profile": _profile(body.get("profile")),
            "status": _status(body.get("status", "active")),
        }
        key = self.users.insert(row)
        return int(key["id"])

    def get_user(self, user_id: int) -> dict[str, Any]:
        row = self.users.get({"id": user_id})
        if row is None:
            raise NotFound(f"no user {user_id}")
        return public_user(row)

    def update_user(self, user_id: int, body: Mapping[str, Any]) -> int:
        """Apply the changes; returns the user's id (a new one when ``id`` was changed)."""
        _only(body, UPDATE_FIELDS)
        if not body:
            raise BadRequest(f"nothing to change: send one or more of {sorted(UPDATE_FIELDS)}")
        changes: dict[str, Any] = {}
        for name, value in body.items():
            if name == "password":
                changes["password_hash"] = password_hash(_text(value, "password"))
            elif name == "profile":
                changes["profile"] = _profile(value)
            elif name == "status":
                changes["status"] = _status(value)
            elif name == "id":
                changes["id"] = _user_id(value)
            else:
                changes[name] = value
        with self._lock(user_id):
            changed = self.users.update({"id": user_id}, changes)
        new_id = int(changes.get("id", user_id))
        # MySQL counts changed rows: 0 is also the answer for changes equal to the stored values.
        if not changed and self.users.get({"id": new_id}) is None:
            raise NotFound(f"no user {user_id}")
        return new_id

    def delete_user(self, user_id: int) -> None:
        with self._lock(user_id):
            deleted = self.users.delete({"id": user_id})
        if not deleted:
            raise NotFound(f"no user {user_id}")

    # ----------------------------------------------------------------- orders

    def place_order(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Insert the order and debit its total from the user's balance, in one transaction."""
        _only(body, ORDER_FIELDS)
        user_id = _user_id(_required(body, "user_id"))
        total = _money(_required(body, "total"), "total")
        order = {
            "id": _user_id(body["id"]) if body.get("id") is not None else _allocate(),
            "user_id": user_id, "total": total, "placed_at": utc_now(3), "note": body.get("note"),
        }
        with self._lock(user_id):
            user = self.users.get({"id": user_id})
            if user is None:
                raise NotFound(f"no user {user_id}")
            balance = Decimal(user["balance"]) - total
            with self.client.transaction() as tx:
                tx.table(self.orders.source).insert(order)
                if not tx.table(self.users.source).update({"id": user_id}, {"balance": balance}):
                    raise NotFound(f"no user {user_id}")  # deleted meanwhile: the insert rolls back
        return {"id": order["id"], "user_id": user_id, "total": str(total), "balance": str(balance)}

    def user_orders(self, user_id: int, limit: int = 50) -> list[dict[str, Any]]:
        """The user's orders, newest first (the ``by_user`` access pattern, read backwards)."""
        rows = self.orders.query(BY_USER, {"user_id": user_id})
        return [public_order(r) for r in reversed(rows[-limit:] if limit else [])]

    def _lock(self, user_id: int) -> threading.Lock:
        return self._locks[hash(user_id) % _LOCK_STRIPES]


# --------------------------------------------------------------------------- rows as JSON


def public_user(row: Mapping[str, Any]) -> dict[str, Any]:
    """A user as the API shows it: no password hash, JSON-friendly values."""
    out = {k: _json_value(v) for k, v in row.items() if k != "password_hash"}
    if isinstance(row.get("profile"), str):
        out["profile"] = json.loads(row["profile"])
    return out


def public_order(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _json_value(v) for k, v in row.items()}


def _json_value(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if isinstance(v, dt.date | dt.datetime):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.hex()
    return v


# --------------------------------------------------------------------------- input checks


def _only(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")


def _required(body: Mapping[str, Any], name: str) -> Any:
    if body.get(name) is None:
        raise BadRequest(f"field {name!r} is required")
    return body[name]


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"field {name!r} must be a non-empty string")
    return value


def _user_id(value: Any) -> int:
    return _int(value, "id")


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise BadRequest(f"field {name!r} must be an integer")
    try:
        n = int(value)
    except ValueError:
        raise BadRequest(f"field {name!r} must be an integer, got {value!r}") from None
    if n < 1:
        raise BadRequest(f"field {name!r} must be positive, got {n}")
    return n


def _money(value: Any, name: str, *, allow_zero: bool = False) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise BadRequest(f"field {name!r} must be an amount such as \"12.50\"")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise BadRequest(f"field {name!r} must be an amount such as \"12.50\", got {value!r}") from None
    exponent = amount.as_tuple().exponent
    if not amount.is_finite() or not isinstance(exponent, int) or exponent < -2:
        raise BadRequest(f"field {name!r} must be an amount with at most 2 decimals, got {value!r}")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise BadRequest(f"field {name!r} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return amount


def _profile(value: Any) -> str | None:
    """A profile is a JSON object (or null), stored in the JSON column as its text."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest("field 'profile' must be a JSON object or null")
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _status(value: Any) -> str:
    if value not in STATUSES:
        raise BadRequest(f"field 'status' must be one of {list(STATUSES)}, got {value!r}")
    return str(value)


def _allocate(randbelow: Callable[[int], int] = secrets.randbelow) -> int:
    low, high = _ALLOCATED_IDS
    return low + randbelow(high - low)

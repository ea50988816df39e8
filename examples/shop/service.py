"""The shop's use cases, written against :mod:`replicator.client` and nothing else.

Users, their orders and the orders' items, on the demo shop's schema
(:data:`replicator.demo.workload.SCHEMA`), mapped the single-table way (docs/model.md): a user's
orders are the user's collection (one Query in DynamoDB), an order's items are embedded in the
order's item. Every read and write goes through the client, so the service runs unchanged in
every phase of the migration: the client decides which store answers. Errors the caller made are
:class:`BadRequest` / :class:`NotFound`; the client's own errors (:mod:`replicator.errors`)
pass through for the HTTP layer to map.

A balance is money: an order debits its total from the user's balance in the same
transaction as the inserts of the order and its items. The client offers no read inside a transaction, so the
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
ORDER_FIELDS = frozenset({"id", "user_id", "total", "note", "items"})
LINE_FIELDS = frozenset({"sku", "qty", "price"})
#: An order's items are numbered within it: item id = order id * ITEM_IDS_PER_ORDER + line (1, 2, ...).
ITEM_IDS_PER_ORDER = 100
MAX_LINES = ITEM_IDS_PER_ORDER - 1
#: Ids the service allocates when the caller sends none: above any seeded id, JSON-safe.
_ALLOCATED_IDS = (2**40, 2**53)
#: Order ids stay below 10**12: DynamoDB keys an order ORDER#{id:012d}, twelve digits that sort as
#: the ids do (a longer id could not be mapped); the service allocates them from this range.
MAX_ORDER_ID = 10**12 - 1
_ALLOCATED_ORDER_IDS = (10**11, 10**12)
_LOCK_STRIPES = 64
COLLECTION = "collection"  # a user with their orders, one partition (tables[].collections)
ITEMS = "items"  # an order's items, embedded in the order (tables[].embed.as)


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


SHOP_TABLES = ("users", "orders", "order_items")


def shop_tables(settings: Settings, database: str | None = None) -> tuple[str, str, str]:
    """The ``(users, orders, order_items)`` sources of the shop in the mapping (``database`` when
    given)."""
    sources = {t.source for t in settings.tables}
    if database is not None:
        candidates = [database]
    else:
        candidates = sorted({s.split(".")[0] for s in sources if s.endswith(".users")})
    found = [(f"{db}.users", f"{db}.orders", f"{db}.order_items") for db in candidates
             if {f"{db}.{t}" for t in SHOP_TABLES} <= sources]
    if len(found) != 1:
        mapped = ", ".join(sorted(sources)) or "none"
        which = f"for {database}" if database else "of exactly one database"
        raise ConfigError(f"the configuration must map <database>.users, <database>.orders and "
                          f"<database>.order_items ({which}); mapped: {mapped}")
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
        users, orders, items = shop_tables(client.settings, database)
        self.users: Table = client.table(users)
        self.orders: Table = client.table(orders)
        self.items: Table = client.table(items)
        collection = next((c for c in self.users.mapper.mapping.collections if c.name == COLLECTION), None)
        if collection is None or orders not in collection.members:
            raise ConfigError(f"the shop lists a user's orders by the collection {COLLECTION!r}: declare "
                              f"it in tables[source={users}].collections as "
                              f"{{name: {COLLECTION}, members: {{{orders}: {{user_id: id}}}}}}")
        if ITEMS not in self.orders.children:
            raise ConfigError(f"the shop reads an order with its items: embed {items} in {orders} with "
                              f"tables[source={items}].embed = {{parent: {orders}, as: {ITEMS}, "
                              f"on: {{order_id: id, user_id: user_id}}}}")
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
        """Insert the order and its items and debit its total from the user's balance, in one
        transaction. The total is the items' sum (a ``total`` sent with ``items`` must equal it);
        an order without items needs its ``total``. Item ids are ``order id * 100 + line``."""
        _only(body, ORDER_FIELDS)
        user_id = _user_id(_required(body, "user_id"))
        lines = _lines(body.get("items"))
        total = sum((line["qty"] * line["price"] for line in lines), Decimal("0.00"))
        if not lines:
            total = _money(_required(body, "total"), "total")
        elif body.get("total") is not None and _money(body["total"], "total") != total:
            raise BadRequest(f"field 'total' is {body['total']!r} but the items sum to {total}: send either "
                             "the items alone or their exact sum")
        oid = _order_id(body["id"]) if body.get("id") is not None else _allocate(_ALLOCATED_ORDER_IDS)
        order = {"id": oid, "user_id": user_id, "total": total, "placed_at": utc_now(3),
                 "note": body.get("note")}
        items = [{"id": oid * ITEM_IDS_PER_ORDER + n, "order_id": oid, "user_id": user_id, **line}
                 for n, line in enumerate(lines, start=1)]
        with self._lock(user_id):
            user = self.users.get({"id": user_id})
            if user is None:
                raise NotFound(f"no user {user_id}")
            balance = Decimal(user["balance"]) - total
            with self.client.transaction() as tx:
                tx.table(self.orders.source).insert(order)
                for item in items:
                    tx.table(self.items.source).insert(item)
                if not tx.table(self.users.source).update({"id": user_id}, {"balance": balance}):
                    raise NotFound(f"no user {user_id}")  # deleted meanwhile: the inserts roll back
        return {"id": oid, "user_id": user_id, "total": str(total), "balance": str(balance),
                "items": len(items)}

    def get_order(self, user_id: int, order_id: int) -> dict[str, Any]:
        """One order of the user with its items (one item in DynamoDB, the items embedded in it)."""
        row = self.orders.get({"id": order_id, "user_id": user_id}, include=[ITEMS])
        if row is None:
            raise NotFound(f"user {user_id} has no order {order_id}")
        return {**public_order(row), ITEMS: [public_order(r) for r in row[ITEMS]]}

    def user_orders(self, user_id: int, limit: int = 50) -> list[dict[str, Any]]:
        """The user's orders, newest first: the user's collection (one Query in DynamoDB, in the
        order of the orders' ids), sorted by when they were placed."""
        found = self.users.query(COLLECTION, {"id": user_id})
        if not found:
            raise NotFound(f"no user {user_id}")
        rows = sorted(found[0][self.orders.mapper.mapping.table], key=lambda r: (r["placed_at"], r["id"]),
                      reverse=True)
        return [public_order(r) for r in rows[:limit]]

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


def _order_id(value: Any) -> int:
    n = _int(value, "id")
    if n > MAX_ORDER_ID:
        raise BadRequest(f"field 'id': an order id is at most {MAX_ORDER_ID} (twelve digits), got {n}")
    return n


def _lines(value: Any) -> list[dict[str, Any]]:
    """An order's items: a list of ``{"sku", "qty", "price"}``, at most MAX_LINES."""
    if value is None:
        return []
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_LINES:
        raise BadRequest(f"field 'items' must be a list of 1 to {MAX_LINES} items")
    lines = []
    for n, line in enumerate(value, start=1):
        if not isinstance(line, dict) or set(line) != LINE_FIELDS:
            raise BadRequest(f"item {n} must be an object with exactly the fields {sorted(LINE_FIELDS)}")
        lines.append({"sku": _text(line["sku"], f"items[{n}].sku"),
                      "qty": _int(line["qty"], f"items[{n}].qty"),
                      "price": _money(line["price"], f"items[{n}].price")})
    return lines


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


def _allocate(bounds: tuple[int, int] = _ALLOCATED_IDS,
              randbelow: Callable[[int], int] = secrets.randbelow) -> int:
    low, high = bounds
    return low + randbelow(high - low)

"""``python -m examples.shop.schema --config FILE``: create the shop's database and seed it.

The schema and the seed rows are the demo shop's (:mod:`replicator.demo.workload`): ``--users``
users and twice as many orders, with one to three items each. The database is the one the
settings map (``<db>.users``, ``<db>.orders`` and ``<db>.order_items``); it is created with
the client's MySQL user (``client.mysql_user``), which therefore needs CREATE on it. An
existing database is left alone.

This is set-up, as a schema migration tool would do it: DDL through the product's MySQL
adapter. The service itself reads and writes through :mod:`replicator.client` only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from examples.shop.service import shop_tables
from replicator.adapters.mysql import connect, mysql_errors
from replicator.client.client import client_mysql_settings
from replicator.demo.workload import MySQLExecutor, PlaceOrder, create_schema, seed
from replicator.errors import ReplicatorError
from replicator.settings import MySQLSettings, Settings, load_settings


def app_mysql(settings: Settings) -> MySQLSettings:
    """The MySQL settings with the application's user (``client.mysql_user``) when set."""
    return client_mysql_settings(settings)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m examples.shop.schema",
                                description="Create the shop's database with the demo schema and seed rows.")
    p.add_argument("--config", type=Path, help="settings file (REPLICATOR_* variables override it)")
    p.add_argument("--database", help="default: the database whose users, orders and order_items the "
                                      "settings map")
    p.add_argument("--users", type=int, default=1000,
                   help="users to seed (and twice as many orders, with their items)")
    args = p.parse_args(argv)
    try:
        settings = load_settings(args.config)
        database = shop_tables(settings, args.database)[0].split(".")[0]
        conn = connect(app_mysql(settings))
        try:
            with mysql_errors("looking for the database"), conn.cursor() as cur:
                cur.execute("SHOW DATABASES LIKE %s", (database,))
                exists = cur.fetchone() is not None
            if exists:
                print(f"database {database} exists: left as it is")
                return 0
            create_schema(conn, database)
            ops = list(seed(args.users))
            MySQLExecutor(conn).apply_many(ops)
        finally:
            conn.close()
    except ReplicatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    items = sum(len(op.items) for op in ops if isinstance(op, PlaceOrder))
    print(f"database {database} created: {args.users} users, {2 * args.users} orders, {items} order items")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

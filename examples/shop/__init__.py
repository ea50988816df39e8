"""The shop: a sample application that does all its data access through :mod:`replicator.client`.

Users, orders and their items behind a small HTTP JSON API, on the demo shop's schema
(:mod:`replicator.demo.workload`) mapped the single-table way (docs/model.md), so that it runs
unchanged through every migration phase:

- :mod:`.service`: the use cases (create, read, change and delete users; place an order with its
  items and debit the user's balance in one transaction; list a user's orders, the user's
  collection; read an order with its items), on a :class:`~replicator.client.Client`;
- :mod:`.server`: the HTTP API (``ThreadingHTTPServer``) and how errors map to status codes;
- :mod:`.load`: a load generator that reports errors and latency per migration phase;
- :mod:`.schema`: creates and seeds the shop's database for a local run.

``python -m examples.shop --config examples/shop/config.yaml --port 8080`` serves it (from the
repository root); the README's "Sample application" section walks through a local run.
"""

from examples.shop.server import ShopServer, serve
from examples.shop.service import ShopService

__all__ = ["ShopServer", "ShopService", "serve"]

"""``python -m examples.shop --config FILE --port N``: the shop's HTTP service until Ctrl-C.

Run it from the repository root (``examples`` is not installed with the product). The
settings are the product's own (YAML plus ``REPLICATOR_*`` variables); the application's
MySQL user comes from ``client.mysql_user`` / ``client.mysql_password``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from examples.shop.server import ShopServer
from examples.shop.service import ShopService
from replicator.client import connect
from replicator.errors import ReplicatorError
from replicator.logs import configure_logging
from replicator.settings import load_settings


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m examples.shop", description="The shop's HTTP JSON service.")
    p.add_argument("--config", type=Path, help="settings file (REPLICATOR_* variables override it)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on; 0 picks a free one")
    p.add_argument("--name", default="shop-api", help="how the client shows in markers and logs")
    p.add_argument("--database", help="the shop's database; default: the one whose users and orders "
                                      "tables the settings map")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        settings = load_settings(args.config)
        configure_logging(settings.log)
        with connect(settings, name=args.name) as client:
            server = ShopServer(ShopService(client, args.database), args.host, args.port)
            try:
                server.start()
            except OSError as exc:
                print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
                return 2
            print(f"shop service on {server.url} (migration phase {client.phase.phase}); Ctrl-C stops it",
                  flush=True)
            try:
                while not stop.wait(1.0):
                    pass
            finally:
                server.stop()
    except ReplicatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The door to MySQL (PyMySQL): one connection factory, one error translation.

:func:`connect` builds every plain connection of the product (catalog reads, backfill,
health probe, the application client) from :class:`~replicator.settings.MySQLSettings`.
:func:`mysql_errors` maps PyMySQL exceptions into the error tree:

- the server cannot be reached or went away, lock waits, deadlocks -> :class:`SourceUnavailable`
  (retry; nothing was committed by the failed statement);
- access denied, unknown database -> :class:`ConfigError` naming the option to fix;
- a statement MySQL refuses (duplicate key, data too long, bad value) ->
  :class:`StatementRejected` (:class:`DuplicateKeyError` for a duplicate key).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
import pymysql.cursors

from replicator.errors import ConfigError, DuplicateKeyError, SourceUnavailable, StatementRejected
from replicator.settings import MySQLSettings

__all__ = ["Connection", "MySQLError", "connect", "mysql_errors"]

Connection = pymysql.Connection
MySQLError = pymysql.err.MySQLError

# Client-side "cannot reach / lost the server" codes and server-side transient conditions.
TRANSIENT_CODES = frozenset((
    2003, 2005, 2006, 2013, 2055,  # can't connect, unknown host, gone away, lost connection
    1040, 1053, 1927,  # too many connections, server shutdown, connection killed
    1205, 1213,  # lock wait timeout, deadlock: the transaction was rolled back, retry it
))
_ACCESS_DENIED = frozenset((1044, 1045, 1698))
_CANNOT_CONNECT = frozenset((2003, 2005, 2026))  # refused / timed out, unknown host, TLS handshake
_UNKNOWN_DATABASE = 1049
_DUPLICATE_KEY = 1062


def connect(cfg: MySQLSettings, *, database: str | None = None, autocommit: bool = True,
            utc: bool = False, dict_rows: bool = False, read_timeout_s: float = 30.0) -> Connection[Any]:
    """A connection with the product's defaults (utf8mb4, timeouts); ``utc`` sets the session
    time zone to UTC (TIMESTAMP columns read as UTC); ``dict_rows`` returns rows as dicts."""
    kwargs: dict[str, Any] = {}
    if utc:
        kwargs["init_command"] = "SET SESSION time_zone = '+00:00'"
    if dict_rows:
        kwargs["cursorclass"] = pymysql.cursors.DictCursor
    with mysql_errors("connecting", cfg):
        return pymysql.connect(
            host=cfg.host, port=cfg.port, user=cfg.user, password=cfg.password.get_secret_value(),
            database=database, charset="utf8mb4", autocommit=autocommit,
            connect_timeout=cfg.connect_timeout_s, read_timeout=read_timeout_s, write_timeout=read_timeout_s,
            **kwargs,
        )


def error_code(exc: BaseException) -> int:
    args = getattr(exc, "args", ())
    return int(args[0]) if args and isinstance(args[0], int) else 0


def _text(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    return str(args[-1]) if args else str(exc)


@contextmanager
def mysql_errors(what: str, cfg: MySQLSettings | None = None) -> Iterator[None]:
    """Translate PyMySQL exceptions raised inside the block; ``what`` says what was being done."""
    where = f" at {cfg.host}:{cfg.port}" if cfg is not None else ""
    try:
        yield
    except pymysql.err.MySQLError as exc:
        code = error_code(exc)
        if code in _ACCESS_DENIED:
            user = f" for user {cfg.user!r}" if cfg is not None else ""
            raise ConfigError(f"MySQL{where} refused access{user} while {what}: {_text(exc)}; check "
                              "mysql.user / mysql.password (REPLICATOR_MYSQL__PASSWORD) and the "
                              "grants") from exc
        if code == _UNKNOWN_DATABASE:
            raise ConfigError(f"MySQL{where}: {_text(exc)} while {what}; check tables[].source") from exc
        if code in _CANNOT_CONNECT:
            raise SourceUnavailable(f"MySQL{where} cannot be reached while {what}: {_text(exc)}; check "
                                    "mysql.host and mysql.port (REPLICATOR_MYSQL__HOST, "
                                    "REPLICATOR_MYSQL__PORT) and that the server runs") from exc
        if code in TRANSIENT_CODES or (isinstance(exc, pymysql.err.OperationalError) and code >= 2000):
            raise SourceUnavailable(f"MySQL{where} unavailable while {what}: {_text(exc)}") from exc
        if code == _DUPLICATE_KEY:
            raise DuplicateKeyError(f"MySQL refused {what}: {_text(exc)}", code=code) from exc
        if isinstance(exc, pymysql.err.InterfaceError):
            raise SourceUnavailable(f"MySQL connection unusable while {what}: {exc}") from exc
        raise StatementRejected(f"MySQL refused {what}: ({code}) {_text(exc)}", code=code) from exc

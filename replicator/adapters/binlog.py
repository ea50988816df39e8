"""The door to the binlog (python-mysql-replication): the binlog as a stream of
:mod:`replicator.reader.items`, and the exception translation of that stream.

:class:`BinlogSource` is the real :class:`~replicator.reader.ports.ChangeSource`. The library
parses the wire protocol and the table-map events; row images are decoded by
:mod:`replicator.reader.decode` (or encoded straight to change events by the compiled path of
:mod:`replicator.reader.rowcodec`) from the event's bytes, with the layout the table-map event
gave (binlog_row_metadata=FULL), never today's information_schema. Rows of unmapped tables
are filtered by the library before their bytes are touched (``only_schemas``/``only_tables``
plus an exact ``db.table`` check here). :func:`parse_json_binary` is the library's parser of
MySQL's binary JSON format, for the decoder.

Transactions: MariaDB opens one with a GTID event (a DDL's GTID event is flagged
standalone), MySQL with ``BEGIN`` after its GTID event; a transaction ends with an XID event
or a ``COMMIT`` query. A DDL statement outside ``BEGIN`` is its own transaction.

:func:`binlog_errors` translates what the stream raises: what is particular to a replication
stream here (a position the server cannot send -> :class:`BinlogPurgedError`, missing
replication grants -> :class:`GrantsMissingError`), the rest through
:func:`replicator.adapters.mysql.mysql_errors`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import structlog
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from pymysqlreplication.json_binary import parse_json as parse_json_binary
from pymysqlreplication.row_event import DeleteRowsEvent, TableMapEvent, UpdateRowsEvent, WriteRowsEvent

from replicator.adapters.mysql import MySQLError, error_code, mysql_errors
from replicator.errors import (
    BinlogPurgedError,
    GrantsMissingError,
    ReplicatorError,
    SourceUnavailable,
    StatementRejected,
    UnmappableSchemaError,
)
from replicator.reader.decode import DecodedRows
from replicator.reader.gtid import StartAt
from replicator.reader.items import Heartbeat, Item, RawRows, RowsChange, RowsKind, Statement, TxBegin, TxEnd
from replicator.reader.schema import Catalog, ColumnSpec, T, TableSchema, build_schema
from replicator.settings import MySQLSettings

__all__ = ["BinlogSource", "binlog_errors", "parse_json_binary", "table_schema"]

log = structlog.get_logger("replicator.adapters.binlog")

_MARIADB_FL_STANDALONE = 0x01
_CHAR_TYPES = frozenset((T.STRING, T.VAR_STRING, T.VARCHAR, T.BLOB))
_FALLBACK_MAXLEN = {"utf8mb4": 4, "utf8mb3": 3, "utf8": 3, "ucs2": 2, "utf16": 4, "utf32": 4}
_CANNOT_SEND = 1236  # ER_MASTER_FATAL_ERROR_READING_BINLOG: purged file, bad position
_REFUSED = frozenset((1045, 1227, 1044, 1142))  # access denied, missing REPLICATION privileges
_ROWS_KIND: dict[type, RowsKind] = {WriteRowsEvent: "insert", UpdateRowsEvent: "update",
                                    DeleteRowsEvent: "delete"}


def table_schema(ev: Any, catalog: Catalog) -> TableSchema:
    """A :class:`TableSchema` from a parsed TableMapEvent and the catalog."""
    om = ev.optional_metadata
    names = list(om.column_name_list or [])
    source = f"{ev.schema}.{ev.table}"
    if len(names) != len(ev.columns):
        raise UnmappableSchemaError(
            f"{source}: the binlog carries no column names (binlog_row_metadata is not FULL on the server "
            "that wrote this event); set binlog_row_metadata=FULL and re-snapshot the table"
        )
    charset_ids = list(om.charset_collation_list or [])
    geometry = list(om.geometry_type_list or [])
    json_cols = catalog.json_columns.get(source, frozenset())
    text_types = catalog.text_types.get(source, {})
    mariadb = getattr(ev, "dbms", "mariadb") == "mariadb"
    specs: list[ColumnSpec] = []
    ci = gi = 0
    for col, name in zip(ev.columns, names, strict=True):
        t = col.type
        charset, maxlen = None, 1
        if t in _CHAR_TYPES or (t == T.GEOMETRY and mariadb):
            cid = int(charset_ids[ci]) if ci < len(charset_ids) else 63
            ci += 1
            fallback = str(col.character_set_name or "utf8mb4")
            charset, maxlen = catalog.collations.get(cid) or (fallback, _FALLBACK_MAXLEN.get(fallback, 1))
        geo = 0
        if t == T.GEOMETRY:
            geo = int(geometry[gi]) if gi < len(geometry) else 0
            gi += 1
        values: tuple[str, ...] = ()
        if t == T.ENUM:
            values = tuple((col.enum_values or [""])[1:])
        elif t == T.SET:
            values = tuple(col.set_values or ())
        specs.append(ColumnSpec(
            name=name, type=t, unsigned=bool(col.unsigned), charset=charset, mbmaxlen=maxlen,
            max_length=int(getattr(col, "max_length", 0) or 0),
            length_size=int(getattr(col, "length_size", 0) or 0),
            precision=int(getattr(col, "precision", 0) or 0), decimals=int(getattr(col, "decimals", 0) or 0),
            fsp=int(getattr(col, "fsp", 0) or 0), bits=int(getattr(col, "bits", 0) or 0),
            size=int(getattr(col, "size", 0) or 0) if t in (T.ENUM, T.SET) else 0,
            values=values, geometry_type=geo, is_json=t == T.BLOB and name in json_cols,
            text_type=text_types.get(name, "") if t == T.STRING and charset == "binary" else "",
        ))
    pk_idx = list(om.simple_primary_key_list or []) + sorted((om.primary_keys_with_prefix or {}).keys())
    pk = tuple(names[i] for i in pk_idx)
    return build_schema(ev.schema, ev.table, tuple(specs), pk, display_widths=catalog.display_widths)


def _text(exc: BaseException) -> str:
    return str(exc.args[-1]) if exc.args else str(exc)


def _stream_error(exc: MySQLError, cfg: MySQLSettings) -> ReplicatorError:
    code = error_code(exc)
    if code == _CANNOT_SEND:
        return BinlogPurgedError(
            f"the server cannot send the binlog from the requested position: {_text(exc)}. If the file was "
            "purged, the changes since are lost to the binlog: re-snapshot with `replicator backfill` "
            "and restart with --from the position it reports, after deleting the checkpoint topic."
        )
    if code in _REFUSED:
        return GrantsMissingError(f"MySQL refused the reader ({code}: {_text(exc)}); check mysql.user, "
                                  "mysql.password and the user's grants (REPLICATION SLAVE, REPLICATION "
                                  "CLIENT, SELECT)")
    try:
        with mysql_errors("streaming the binlog", cfg):
            raise exc
    except StatementRejected:
        # A server error the stream has no particular answer for: there is no statement to reject on a
        # replication stream, so resume from the checkpoint, as a replica would.
        return SourceUnavailable(f"MySQL binlog stream failed ({code}: {_text(exc)})")
    except ReplicatorError as translated:
        return translated


@contextmanager
def binlog_errors(cfg: MySQLSettings) -> Iterator[None]:
    """Translate the exceptions of a binlog stream (and of decoding its rows) into the error tree."""
    try:
        yield
    except ReplicatorError:
        raise
    except MySQLError as exc:
        raise _stream_error(exc, cfg) from exc
    except (OSError, EOFError) as exc:
        raise SourceUnavailable(f"MySQL binlog stream failed: {exc}") from exc
    except (UnicodeDecodeError, IndexError, ValueError) as exc:
        raise UnmappableSchemaError(f"a row could not be decoded: {type(exc).__name__}: {exc}; report it "
                                    "with the table definition") from exc


class BinlogSource:
    """A binlog stream opened at ``start``; yields transactions of the ``mapped`` tables."""

    def __init__(self, cfg: MySQLSettings, start: StartAt, mapped: set[str],
                 load_catalog: Callable[[], Catalog], *, server_id: int | None = None,
                 heartbeat_s: float = 1.0) -> None:
        self._cfg = cfg
        self._start = start
        self._mapped = mapped
        self._dbs = {m.split(".")[0] for m in mapped}
        self._load_catalog = load_catalog
        self._server_id = server_id or cfg.server_id
        self._heartbeat_s = heartbeat_s
        self._stream: BinLogStreamReader | None = None
        self._catalog = Catalog()

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            except (OSError, MySQLError) as exc:
                log.debug("binlog_close_failed", error=str(exc))
            self._stream = None

    def _open(self) -> BinLogStreamReader:
        cfg = self._cfg
        kw: dict[str, Any] = {}
        if self._start.gtid:
            kw = {"auto_position": self._start.gtid, "is_mariadb": self._start.flavour == "mariadb"}
        else:
            kw = {"log_file": self._start.file, "log_pos": self._start.offset, "resume_stream": True}
        return BinLogStreamReader(
            connection_settings={"host": cfg.host, "port": cfg.port, "user": cfg.user,
                                 "password": cfg.password.get_secret_value(),
                                 "connect_timeout": cfg.connect_timeout_s,
                                 "read_timeout": max(10.0, self._heartbeat_s * 4)},
            server_id=self._server_id, blocking=True, slave_heartbeat=self._heartbeat_s,
            only_events=[QueryEvent, XidEvent, GtidEvent, MariadbGtidEvent, RotateEvent, HeartbeatLogEvent,
                         TableMapEvent, WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
            only_schemas=sorted(self._dbs), only_tables=sorted({m.split(".")[1] for m in self._mapped}),
            enable_logging=False, **kw,
        )

    def items(self) -> Iterator[Item]:
        with binlog_errors(self._cfg):
            self._catalog = self._load_catalog()
            self._stream = self._open()
            yield from self._translate(self._stream)

    def _translate(self, stream: BinLogStreamReader) -> Iterator[Item]:
        file = self._start.file or ""
        schemas: dict[int, TableSchema] = {}
        in_tx = started = False
        pending_gtid: str | None = None
        for ev in stream:
            pkt = ev.packet
            end = int(pkt.log_pos)
            start = end - int(pkt.event_size)
            ts = int(ev.timestamp)
            if isinstance(ev, RotateEvent):
                # After the stream began, a fake rotate (log_pos 0) that is not the server opening the next
                # file at its start (position 4) is the library reconnecting on its own, from its last event
                # (mid-transaction, maybe): start over from the committed checkpoint instead.
                switching = ev.next_binlog >= file and ev.position == 4
                if end == 0 and started and not switching:
                    raise SourceUnavailable("the binlog connection was re-established by the library")
                file = ev.next_binlog
                started = True
            elif isinstance(ev, MariadbGtidEvent):
                if ev.flags & _MARIADB_FL_STANDALONE:
                    pending_gtid = ev.gtid
                else:
                    yield TxBegin(ev.gtid, file, start, ts)
                    in_tx, pending_gtid = True, None
            elif isinstance(ev, GtidEvent):
                pending_gtid = ev.gtid
            elif isinstance(ev, XidEvent):
                yield TxEnd(file, end, ts)
                in_tx = False
            elif isinstance(ev, QueryEvent):
                query = ev.query.strip()
                word = query[:12].upper()
                if word.startswith(("BEGIN", "XA START")):
                    if not in_tx:
                        yield TxBegin(pending_gtid, file, start, ts)
                        in_tx, pending_gtid = True, None
                elif word.startswith(("COMMIT", "ROLLBACK", "XA COMMIT", "XA END", "XA PREPARE")):
                    if word.startswith(("COMMIT", "ROLLBACK", "XA COMMIT")):
                        yield TxEnd(file, end, ts)
                        in_tx = False
                else:
                    db = ev.schema.decode() if isinstance(ev.schema, bytes) else str(ev.schema)
                    standalone = not in_tx
                    if standalone:
                        yield TxBegin(pending_gtid, file, start, ts)
                        pending_gtid = None
                    if self._touches_mapped(db, query):
                        self._catalog = self._load_catalog()
                    yield Statement(query, db, file, start, ts)
                    if standalone:
                        yield TxEnd(file, end, ts)
            elif isinstance(ev, TableMapEvent):
                if f"{ev.schema}.{ev.table}" in self._mapped:
                    schemas[ev.table_id] = table_schema(ev, self._catalog)
                else:
                    schemas.pop(ev.table_id, None)
            elif isinstance(ev, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent):
                schema = schemas.get(ev.table_id)
                if schema is None:
                    continue
                if not in_tx:
                    yield TxBegin(pending_gtid, file, start, ts)
                    in_tx, pending_gtid = True, None
                kind = _ROWS_KIND[type(ev)]
                bitmaps = ((ev.columns_present_bitmap, ev.columns_present_bitmap2) if kind == "update"
                           else (ev.columns_present_bitmap,))
                body = pkt.read(ev.event_size - pkt.read_bytes)
                # Decoded to Python values only if looked at: the compiled path encodes from the bytes.
                yield RowsChange(schema, kind, DecodedRows(schema, body, bitmaps), file, start, ts,
                                 raw=RawRows(body, bitmaps))
            elif isinstance(ev, HeartbeatLogEvent) and not in_tx:
                yield Heartbeat(file)

    def _touches_mapped(self, db: str, query: str) -> bool:
        if db in self._dbs:
            return True
        return any(re.search(rf"\b`?{re.escape(d)}`?\s*\.", query) for d in self._dbs)

"""Type fidelity on the real stack: each family's edge values reach Kafka exactly as MySQL returns them.

One reader run (module fixture) carries a table per type family; each test compares one
family's events with a SELECT of the same rows, brought to the event value model by the
server itself (CAST ... AS CHAR for temporals and decimals, UTC for TIMESTAMP).
"""

from __future__ import annotations

import json
import os
import random
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from replicator.events import JsonDoc, Temporal, Value
from replicator.reader.decode import shortest_float32
from replicator.settings import Settings, load_settings
from tests.conftest import admin_connect
from tests.replicator.reader.support import head, read_topic, running_reader, wait_caught_up

pytestmark = pytest.mark.integration

Conv = Callable[[Any], Value]


def _temporal(kind: str, utc: bool = False) -> Conv:
    def conv(v: Any) -> Value:
        if v is None:
            return None
        text = str(v).replace(" ", "T") if kind in ("datetime", "timestamp") else str(v)
        return Temporal(kind, text + ("Z" if utc else ""))  # type: ignore[arg-type]

    return conv


def _same(v: Any) -> Value:
    return v  # type: ignore[no-any-return]


def _decimal(v: Any) -> Value:
    return None if v is None else Decimal(str(v))


def _float32(v: Any) -> Value:
    return None if v is None else shortest_float32(struct.unpack("<f", struct.pack("<f", float(v)))[0])


def _json_float(text: str) -> float | Decimal:
    # JSON numbers exact (DESIGN §3.1): a double where its shortest spelling is the number, else
    # the exact Decimal; integers of any size stay integers (json.loads' own reading).
    f = float(text)
    return f if Decimal(repr(f)) == Decimal(text) else Decimal(text)


def _json(v: Any) -> Value:
    return None if v is None else JsonDoc(json.loads(v, parse_float=_json_float))


def _set(v: Any) -> Value:
    return None if v is None else frozenset(str(v).split(",")) if v else frozenset()


@dataclass(frozen=True)
class Col:
    name: str
    ddl: str
    select: str  # SQL expression producing what the event must carry (after conv)
    conv: Conv
    column_type: str | None = None  # expected COLUMN_TYPE when information_schema spells it otherwise


def col(
    name: str, ddl: str, conv: Conv = _same, select: str | None = None, column_type: str | None = None
) -> Col:
    return Col(name, ddl, select or f"`{name}`", conv, column_type)


FAMILIES: dict[str, tuple[list[Col], list[list[str]]]] = {
    "integers": (
        [
            col("ti", "tinyint"),
            col("tu", "tinyint unsigned"),
            col("si", "smallint"),
            col("mi", "mediumint"),
            col("mu", "mediumint unsigned"),
            col("ii", "int"),
            col("iu", "int unsigned"),
            col("bi", "bigint"),
            col("bu", "bigint unsigned"),
        ],
        [
            [
                "-128",
                "255",
                "-32768",
                "-8388608",
                "16777215",
                "-2147483648",
                "4294967295",
                "-9223372036854775808",
                "18446744073709551615",
            ],
            ["127", "0", "32767", "8388607", "0", "2147483647", "0", "9223372036854775807", "0"],
            ["NULL"] * 9,
        ],
    ),
    "decimal": (
        [
            col("d65", "decimal(65,30)", _decimal, "CAST(`d65` AS CHAR)"),
            col("d10", "decimal(10,2)", _decimal, "CAST(`d10` AS CHAR)"),
            col("d38", "decimal(38,0) unsigned", _decimal, "CAST(`d38` AS CHAR)"),
            col("d5", "decimal(5,5)", _decimal, "CAST(`d5` AS CHAR)"),
        ],
        [
            [
                "99999999999999999999999999999999999.999999999999999999999999999999",
                "-12345678.90",
                "99999999999999999999999999999999999999",
                "0.00001",
            ],
            ["-0.000000000000000000000000000001", "0.00", "0", "-0.99999"],
            ["-99999999999999999999999999999999999.999999999999999999999999999999", "1.5", "1", "0"],
        ],
    ),
    "float_double": (
        [
            col("f", "float", _float32, "CAST(`f` AS DOUBLE)"),
            col("d", "double"),
        ],
        [
            ["1.1", "0.1"],
            ["3.4028234e38", "1.7976931348623157e308"],
            ["-1.17549435e-38", "-2.2250738585072014e-308"],
            ["0", "0"],
            ["16777217", "9007199254740993"],
            ["NULL", "NULL"],
        ],
    ),
    "temporal": (
        [
            col("dt", "date", _temporal("date"), "CAST(`dt` AS CHAR)"),
            col("d0", "datetime", _temporal("datetime"), "CAST(`d0` AS CHAR)"),
            col("d3", "datetime(3)", _temporal("datetime"), "CAST(`d3` AS CHAR)"),
            col("d6", "datetime(6)", _temporal("datetime"), "CAST(`d6` AS CHAR)"),
            col("t0", "timestamp NULL", _temporal("timestamp", utc=True), "CAST(`t0` AS CHAR)", "timestamp"),
            col(
                "t6",
                "timestamp(6) NULL",
                _temporal("timestamp", utc=True),
                "CAST(`t6` AS CHAR)",
                "timestamp(6)",
            ),
            col("tm", "time", _temporal("time"), "CAST(`tm` AS CHAR)"),
            col("tm2", "time(2)", _temporal("time"), "CAST(`tm2` AS CHAR)"),
            col("tm6", "time(6)", _temporal("time"), "CAST(`tm6` AS CHAR)"),
            col("y", "year"),
        ],
        [
            [
                "'0000-00-00'",
                "'0000-00-00 00:00:00'",
                "'0000-00-00 00:00:00.000'",
                "'0000-00-00 00:00:00.000000'",
                "'0000-00-00 00:00:00'",
                "'0000-00-00 00:00:00.000000'",
                "'-838:59:59'",
                "'-00:00:00.01'",
                "'-00:00:00.000001'",
                "0",
            ],
            [
                "'9999-12-31'",
                "'9999-12-31 23:59:59'",
                "'9999-12-31 23:59:59.999'",
                "'9999-12-31 23:59:59.999999'",
                "'2038-01-19 03:14:07'",
                "'2038-01-19 03:14:07.999999'",
                "'838:59:59'",
                "'-12:30:00.5'",
                "'-838:59:58.999999'",
                "2155",
            ],
            [
                "'1000-01-01'",
                "'1000-01-01 00:00:00'",
                "'2024-02-29 12:00:00.5'",
                "'2024-02-29 12:00:00.000001'",
                "'1970-01-01 00:00:01'",
                "'1970-01-01 00:00:01.000001'",
                "'00:00:00'",
                "'100:00:00.99'",
                "'-01:02:03.456789'",
                "1901",
            ],
            ["NULL"] * 10,
        ],
    ),
    "strings": (
        [
            col("c", "char(10)"),
            col("v", "varchar(255)"),
            col("tx", "text"),
            col("mt", "mediumtext"),
            col("l1", "varchar(20) CHARACTER SET latin1"),
            col("lt", "text CHARACTER SET latin1"),
            col("c1", "char(5) CHARACTER SET latin1"),
        ],
        [
            [
                "'abc'",
                "'😀 emoji ✓ ü'",
                "'multi\\nline\\ttab'",
                "REPEAT('x', 70000)",
                "'café €'",
                "'Ærø ÿ'",
                "'é'",
            ],
            ["''", "''", "''", "''", "''", "''", "''"],
            ["NULL"] * 7,
            ["'  lead'", "'trailing  '", "'𝄞 music'", "'中文'", "'\\\\back'", "'quote '' s'", "'€'"],
        ],
    ),
    "binary": (
        [
            col("b16", "binary(16)"),
            col("b4", "binary(4)"),
            col("vb", "varbinary(255)"),
            col("bl", "blob"),
            col("tb", "tinyblob"),
            col("lb", "longblob"),
        ],
        [
            [
                "x'01020000000000000000000000000000'",
                "x'00000000'",
                "x'0000'",
                "x''",
                "x'00ff'",
                "REPEAT(x'ab00', 40000)",
            ],
            ["x'ffffffffffffffffffffffffffffff00'", "x'61'", "x''", "x'00'", "x''", "x''"],
            ["NULL"] * 6,
        ],
    ),
    "json": (
        [col("j", "json", _json, column_type="json")],
        [
            ['\'{"a": {"b": [1, 2.5, null, true, false, "x"]}, "ü": "😀"}\''],
            ["'[]'"],
            ["'null'"],
            ["'\"just a string\"'"],
            ["'123456789012345678901234'"],
            ['\'{"big": 18446744073709551616, "neg": -18446744073709551617, "ok": 9223372036854775807}\''],
            ["'[3.14159265358979323846264338327950288, 0.1, 1.10, 2.5e-3, 1e-7]'"],
            ["CONCAT('[', REPEAT('\"abcdefghij\",', 20000), '1]')"],
            ["NULL"],
        ],
    ),
    # MariaDB's UUID / INET6 / INET4 are logged as BINARY(16/4): carried as the text MariaDB returns.
    "uuid_inet": (
        [col("u", "uuid"), col("i6", "inet6"), col("i4", "inet4")],
        [
            ["'6ccd780c-baba-1026-9564-5b8c656024db'", "'2001:db8::ff00:42:8329'", "'192.168.1.1'"],
            ["'00000000-0000-7000-8000-000000000001'", "'::ffff:1.2.3.4'", "'0.0.0.0'"],
            ["'ffffffff-ffff-ffff-ffff-ffffffffffff'", "'::'", "'255.255.255.255'"],
            ["NULL", "NULL", "NULL"],
        ],
    ),
    "enum_set_bit_geometry": (
        [
            col("e", "enum('a','b','it''s')"),
            col("s", "set('x','y','z')", _set),
            col("b64", "bit(64)", _same, "CAST(`b64` AS UNSIGNED)"),
            col("b1", "bit(1)", _same, "CAST(`b1` AS UNSIGNED)"),
            col("g", "geometry"),
            col("yr", "year(4)"),
        ],
        [
            [
                "'b'",
                "''",
                "b'1111111111111111111111111111111111111111111111111111111111111111'",
                "b'1'",
                "ST_GeomFromText('POINT(1 2)')",
                "2024",
            ],
            ["'it''s'", "'x,z'", "b'0'", "b'0'", "ST_GeomFromText('LINESTRING(0 0, 1 1, 2 5)')", "1901"],
            ["''", "'x,y,z'", "1", "b'1'", "ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))')", "0"],
            ["NULL"] * 6,
        ],
    ),
}


@dataclass
class Run:
    db: str
    settings: Settings
    events: dict[str, list[Any]]
    start: tuple[str, int]  # the binlog position before the first insert


@pytest.fixture(scope="module")
def run(stack_env: dict[str, str]) -> Iterator[Run]:
    """Create one table per family, insert the edge rows, stream them once with a real reader."""
    unique = "tf" + uuid.uuid4().hex[:8]
    saved = dict(os.environ)
    os.environ.update(
        {
            **stack_env,
            "REPLICATOR_KAFKA__TOPIC_PREFIX": unique,
            "REPLICATOR_MYSQL__SERVER_ID": str(random.randint(100_000, 4_000_000)),
        }
    )
    conn = admin_connect(stack_env)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{unique}` CHARACTER SET utf8mb4")
            cur.execute(f"USE `{unique}`")
            cur.execute("SET SESSION sql_mode = '', time_zone = '+00:00'")
            for family, (cols, _) in FAMILIES.items():
                defs = ", ".join(f"`{c.name}` {c.ddl}" for c in cols)
                cur.execute(f"CREATE TABLE `{family}` (id INT PRIMARY KEY, {defs})")
        settings = load_settings(tables=[{"source": f"{unique}.{f}"} for f in FAMILIES])
        with running_reader(settings) as reader, conn.cursor() as cur:
            start = head(conn)
            wait_caught_up(reader, start)
            for family, (_cols, rows) in FAMILIES.items():
                for i, values in enumerate(rows, start=1):
                    cur.execute(f"INSERT INTO `{family}` VALUES ({i}, {', '.join(values)})")
            wait_caught_up(reader, head(conn))
        events = {f: read_topic(settings, f"{unique}.{f}", min_count=len(FAMILIES[f][1])) for f in FAMILIES}
        yield Run(unique, settings, events, start)
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{unique}`")
        conn.close()
        admin = AdminClient({"bootstrap.servers": stack_env["REPLICATOR_KAFKA__BOOTSTRAP_SERVERS"]})
        topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(unique + ".")]
        if topics:
            for fut in admin.delete_topics(topics, operation_timeout=30).values():
                fut.result()
        os.environ.clear()
        os.environ.update(saved)


def _expected(stack_env: dict[str, str], db: str, family: str) -> dict[int, dict[str, Value]]:
    cols = FAMILIES[family][0]
    conn = admin_connect(stack_env, db)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION time_zone = '+00:00'")
            cur.execute(f"SELECT id, {', '.join(c.select for c in cols)} FROM `{family}` ORDER BY id")
            return {
                r[0]: {c.name: c.conv(v) for c, v in zip(cols, r[1:], strict=True)} for r in cur.fetchall()
            }
    finally:
        conn.close()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_event_values_equal_what_mysql_returns(run: Run, stack_env: dict[str, str], family: str) -> None:
    expected = _expected(stack_env, run.db, family)
    got = {ev.pk["id"]: {k: v for k, v in (ev.after or {}).items() if k != "id"} for ev in run.events[family]}
    assert [ev.op for ev in run.events[family]] == ["c"] * len(expected)
    assert got == expected


@pytest.mark.parametrize("family", list(FAMILIES))
def test_event_column_types_match_information_schema(
    run: Run, stack_env: dict[str, str], family: str
) -> None:
    conn = admin_connect(stack_env)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s "
                "AND TABLE_NAME=%s ORDER BY ORDINAL_POSITION",
                (run.db, family),
            )
            info = [(str(n), str(t)) for n, t in cur.fetchall()]
    finally:
        conn.close()
    overrides = {c.name: c.column_type for c in FAMILIES[family][0] if c.column_type}
    expected = tuple((n, overrides.get(n, t)) for n, t in info)
    assert {ev.columns for ev in run.events[family]} == {expected}


def test_event_values_survive_the_json_envelope(run: Run) -> None:
    from replicator.events import ChangeEvent

    for events in run.events.values():
        for ev in events:
            assert ChangeEvent.from_json(ev.to_json()) == ev


def test_both_row_paths_write_the_same_records_from_the_real_binlog(run: Run) -> None:
    """The rows events of every family, read again from the server's binlog, through the
    compiled and the pure-Python path (replicator.reader.rowcodec): the same bytes."""
    from replicator.adapters.binlog import BinlogSource
    from replicator.reader.changes import TxContext
    from replicator.reader.gtid import StartAt
    from replicator.reader.items import Heartbeat, RowsChange
    from replicator.reader.rowcodec import CompiledEncoder, PythonEncoder, compiled_module
    from replicator.reader.server import ServerInfo

    module = compiled_module()
    if module is None:
        pytest.skip("the compiled row codec is not built (make setup)")
    mapped = {t.source for t in run.settings.tables}
    info = ServerInfo(run.settings.mysql)
    source = BinlogSource(run.settings.mysql, StartAt(file=run.start[0], offset=run.start[1]), mapped,
                          lambda: info.catalog(mapped))
    paths = (PythonEncoder(), CompiledEncoder(module))
    seen: dict[str, int] = {}
    deadline = time.monotonic() + 60
    try:
        for item in source.items():
            assert time.monotonic() < deadline, "the binlog of the run was not read within 60 s"
            if isinstance(item, Heartbeat):
                break
            if isinstance(item, RowsChange):
                python, compiled = (p.encode(item, TxContext("0-1-1", "0-1-1"), 3, topic="t", ts_ms=1,
                                             generation=1) for p in paths)
                assert compiled == python, item.schema.table
                seen[item.schema.table] = seen.get(item.schema.table, 0) + len(python.records)
    finally:
        source.close()
    assert seen == {f: len(rows) for f, (_, rows) in FAMILIES.items()}

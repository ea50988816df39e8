"""Column type spelling, GTID/--from parsing, DDL parsing, start-up verdicts, event building (pure)."""

from __future__ import annotations

import pytest

from replicator.errors import (
    BinlogPurgedError,
    ConfigError,
    GrantsMissingError,
    SourceConfigError,
    UnmappableSchemaError,
)
from replicator.events import binlog_version
from replicator.reader import checks
from replicator.reader.changes import TxContext, build_events, ddl_tables, dml_tables, truncated_tables
from replicator.reader.gtid import GtidState, parse_from
from replicator.reader.items import RowsChange
from replicator.reader.schema import ColumnSpec, T, build_schema, column_type


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (ColumnSpec("c", T.LONG), "int(11)"),
        (ColumnSpec("c", T.LONGLONG, unsigned=True), "bigint(20) unsigned"),
        (ColumnSpec("c", T.TINY, unsigned=True), "tinyint(3) unsigned"),
        (ColumnSpec("c", T.NEWDECIMAL, precision=65, decimals=30), "decimal(65,30)"),
        (ColumnSpec("c", T.STRING, charset="binary", max_length=16), "binary(16)"),
        (ColumnSpec("c", T.VARCHAR, charset="binary", max_length=255), "varbinary(255)"),
        (ColumnSpec("c", T.STRING, charset="utf8mb4", mbmaxlen=4, max_length=40), "char(10)"),
        (ColumnSpec("c", T.VARCHAR, charset="latin1", max_length=255), "varchar(255)"),
        (ColumnSpec("c", T.BLOB, charset="utf8mb4", mbmaxlen=4, length_size=2), "text"),
        (ColumnSpec("c", T.BLOB, charset="binary", length_size=4), "longblob"),
        (ColumnSpec("c", T.BLOB, charset="utf8mb4", length_size=4, is_json=True), "json"),
        (ColumnSpec("c", T.DATETIME2, fsp=6), "datetime(6)"),
        (ColumnSpec("c", T.TIMESTAMP2, fsp=0), "timestamp"),
        (ColumnSpec("c", T.TIME2, fsp=3), "time(3)"),
        (ColumnSpec("c", T.YEAR), "year(4)"),
        (ColumnSpec("c", T.BIT, bits=64), "bit(64)"),
        (ColumnSpec("c", T.ENUM, values=("a", "it's")), "enum('a','it''s')"),
        (ColumnSpec("c", T.SET, values=("x", "y")), "set('x','y')"),
        (ColumnSpec("c", T.GEOMETRY, geometry_type=1), "point"),
    ],
)
def test_column_type_is_spelled_as_information_schema_does(spec: ColumnSpec, text: str) -> None:
    assert column_type(spec) == text


def test_mysql_8_0_19_and_later_print_no_integer_widths() -> None:
    assert not checks.display_widths("8.0.35")
    assert column_type(ColumnSpec("c", T.LONG, unsigned=True), display_widths=False) == "int unsigned"


def test_from_accepts_file_position_and_both_gtid_families() -> None:
    assert parse_from("mysql-bin.000003:1234").file == "mysql-bin.000003"
    assert parse_from("0-1-42,1-2-7").flavour == "mariadb"
    assert parse_from("3e11fa47-71ca-11e1-9e33-c80aa9429562:1-23").flavour == "mysql"


def test_from_garbage_names_the_accepted_forms() -> None:
    with pytest.raises(ConfigError, match="FILE:POS"):
        parse_from("yesterday")


def test_gtid_state_keeps_the_last_gtid_per_mariadb_domain() -> None:
    state = GtidState("0-1-5")
    for g in ("1-1-3", "0-1-6"):
        state.add(g)
    assert state.position() == "0-1-6,1-1-3"


def test_truncate_and_ddl_table_names_are_qualified_with_the_default_db() -> None:
    assert truncated_tables("TRUNCATE TABLE `t`", "shop") == ["shop.t"]
    assert truncated_tables("truncate other.t2", "shop") == ["other.t2"]
    assert ddl_tables("RENAME TABLE t TO t_old", "shop")[:2] == ["shop.t", "shop.t_old"]


def test_binlog_not_row_full_is_refused_naming_each_setting() -> None:
    with pytest.raises(SourceConfigError, match="binlog_format=STATEMENT"):
        checks.check_binlog_settings(
            {
                "log_bin": "ON",
                "binlog_format": "STATEMENT",
                "binlog_row_image": "FULL",
                "binlog_row_metadata": "FULL",
            }
        )


def test_missing_replication_grant_is_refused_with_the_grant_statement() -> None:
    with pytest.raises(GrantsMissingError, match="GRANT REPLICATION SLAVE"):
        checks.check_grants(["GRANT SELECT ON *.* TO `r`@`%`"], "r")


def test_mariadb_binlog_monitor_counts_as_replication_client() -> None:
    checks.check_grants(["GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `r`@`%`"], "r")


def test_purged_position_names_the_oldest_binlog() -> None:
    with pytest.raises(BinlogPurgedError, match=r"oldest binlog: b\.000007"):
        checks.check_position_available("b.000003", ["b.000007", "b.000008"], "the checkpoint position")


def test_set_null_foreign_key_on_a_mapped_child_is_refused() -> None:
    fks = checks.foreign_keys_of(
        "d", "c", "CONSTRAINT `fk` FOREIGN KEY (`p`) REFERENCES `par` (`id`) ON DELETE SET NULL"
    )
    with pytest.raises(SourceConfigError, match=r"d\.c constraint fk -> d\.par"):
        checks.check_fk_cascades({"d.c"}, fks)


def test_json_columns_are_recognised_from_json_valid_checks() -> None:
    rows = [("d", "t", "json_valid(`doc`)"), ("d", "t", "`n` > 0")]
    assert checks.json_columns(rows) == {"d.t": frozenset({"doc"})}


SCHEMA = build_schema("d", "t", (ColumnSpec("id", T.LONG), ColumnSpec("v", T.LONG)), ("id",))


def _change(kind: str, rows: list[tuple[dict[str, object], ...]]) -> RowsChange:
    return RowsChange(SCHEMA, kind, rows, "bin.000002", 1000, 1_700_000_000)  # type: ignore[arg-type]


def test_primary_key_update_is_a_delete_then_an_insert_the_insert_half_one_above() -> None:
    # Both halves may land on one item key (a key template without the primary key): the
    # insert must win whichever the writer applies first (issue 12's lost rows).
    events = build_events(
        _change("update", [({"id": 1, "v": 0}, {"id": 2, "v": 0})]), TxContext("0-1-9", "0-1-9"), 0
    )
    assert [(e.op, e.pk, e.tx.index) for e in events] == [("d", {"id": 1}, 0), ("c", {"id": 2}, 1)]
    row = binlog_version("bin.000002", 1000, 0)
    assert [e.version for e in events] == [row, row + 1]


def test_rows_of_one_event_get_increasing_versions_and_tx_indexes() -> None:
    events = build_events(
        _change("insert", [({"id": 1, "v": 0},), ({"id": 2, "v": 0},)]), TxContext("x", None), 5
    )
    assert [(e.version - binlog_version("bin.000002", 1000), e.tx.index, e.ts_ms) for e in events] == [
        (0, 5, 1_700_000_000_000),
        (2, 6, 1_700_000_000_000),
    ]


def test_a_table_without_primary_key_cannot_be_carried() -> None:
    schema = build_schema("d", "nokey", (ColumnSpec("v", T.LONG),), ())
    change = RowsChange(schema, "insert", [({"v": 1},)], "bin.000001", 4, 0)
    with pytest.raises(UnmappableSchemaError, match="no primary key"):
        build_events(change, TxContext("x", None), 0)


@pytest.mark.parametrize(("query", "table"), [
    ("INSERT INTO t VALUES (1)", "shop.t"),
    ("insert ignore into `other`.`t2` (a) values (1)", "other.t2"),
    ("UPDATE LOW_PRIORITY t SET a = 1", "shop.t"),
    ("DELETE FROM shop.t WHERE a = 1", "shop.t"),
    ("REPLACE INTO t VALUES (1)", "shop.t"),
])
def test_statement_logged_dml_names_its_table(query: str, table: str) -> None:
    assert dml_tables(query, "shop") == [table]


def test_ddl_is_not_statement_dml() -> None:
    assert dml_tables("ALTER TABLE t ADD c INT", "shop") == []

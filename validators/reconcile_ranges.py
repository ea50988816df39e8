"""Reconciliation by checksum ranges: fold both stores into primary-key ranges, bisect only the
ranges whose folds differ, and compare rows only at the leaves.

1. **Boundaries.** MySQL's primary-key index is cut into ranges ``(lo, hi]`` of ``chunk_rows``
   rows (one index-only query per range).
2. **Two streaming passes, side by side.** MySQL folds each range on the server
   (``COUNT(*)``, ``BIT_XOR`` of the row digest, :mod:`validators.checksum`); DynamoDB is scanned
   in parallel segments, each live item mapped back to a row, digested the same way and folded
   into the range its key falls in. A clean table costs these two passes and no row transfer
   from MySQL. (Tables with FLOAT, DOUBLE or JSON columns have their MySQL rows streamed and
   digested in Python instead: MySQL spells those values differently.)
3. **Bisection.** The items of the differing ranges are read again (one scan, filtered to those
   ranges where the key allows it); each differing range is split at its middle MySQL key, the
   first half folded by MySQL (the second is the rest), and only halves whose folds differ are
   split again, down to ``leaf_rows`` rows, which are read and compared row by row.
4. **Settle.** While writes go on, a difference may be a change in flight: after ``settle_s`` the
   differing keys are read again from both stores and only the ones that persist are reported.

Keys must sort in Python as in MySQL (:func:`validators.checksum.orderable`: numbers, dates and
times, bytes). Other tables are compared in full (:func:`validators.reconcile.reconcile_table`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import structlog

from replicator.adapters.dynamodb import dynamo_errors
from replicator.backfill.source import SnapshotSource
from replicator.catalog import TableShape
from replicator.control import ControlStore, names
from replicator.diff import Difference, describe, diff_tables
from replicator.events import Row
from replicator.mapping.conditional import is_tombstone, owned_by
from replicator.mapping.mapper import TableMapper
from replicator.mapping.values import decode_value, encode_value
from replicator.settings import Settings, TableMapping
from validators.checksum import (
    Column,
    Fold,
    OrderKey,
    Range,
    digest_sql,
    item_digester,
    locate,
    order_key,
    orderable,
    row_digest,
    sql_exact,
)
from validators.ranges import Key, RangeReader

log = structlog.get_logger("reconcile")

Progress = Callable[[str, int, int | None], None]  # (stage, done, total)


@dataclass(frozen=True)
class RangeOptions:
    chunk_rows: int = 2000
    leaf_rows: int = 16
    segments: int = 4
    settle_s: float = 5.0


@dataclass
class Found:
    """A difference, with both sides' rows (for the repair) and the item's DynamoDB key."""

    difference: Difference
    mysql: Row | None
    dynamodb: Row | None
    pk: Key


@dataclass
class RangeReport:
    table: str
    method: str  # "checksum" (folds in SQL) | "checksum-stream" (MySQL rows digested in Python)
    mysql_rows: int = 0
    dynamodb_items: int = 0
    tombstones: int = 0
    ranges: int = 0
    ranges_differing: int = 0
    mysql_rows_fetched: int = 0  # rows the server sent (leaves; every row in stream mode)
    dynamodb_items_refetched: int = 0  # items of differing ranges read again for the bisection
    found: list[Found] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def differences(self) -> list[Difference]:
        return [f.difference for f in self.found]

    @property
    def ok(self) -> bool:
        return not self.found

    @property
    def compared(self) -> int:
        extra = sum(1 for f in self.found if f.difference.kind == "extra_in_dynamodb")
        return self.mysql_rows + extra


@dataclass
class _Item:
    key: OrderKey
    pk: Key
    digest: int
    row: Row


class RangeReconciler:
    """Reconciles one mapped table (see the module docstring)."""

    def __init__(self, settings: Settings, mapping: TableMapping, shape: TableShape, src: SnapshotSource,
                 reader: RangeReader, client: Any, options: RangeOptions | None = None, *,
                 sleep: Callable[[float], None] = time.sleep, progress: Progress | None = None) -> None:
        self.settings = settings
        self.mapping = mapping
        self.shape = shape
        self.src = src
        self.reader = reader
        self.client = client
        self.options = options or RangeOptions()
        self.sleep = sleep
        self.progress = progress or (lambda stage, done, total: None)
        self.mapper = TableMapper(mapping, shape.columns, shape.pk)
        self.mapper.validate()
        self.columns: list[Column] = [(c, self.mapper.types[c]) for c in self.mapper.attributes]
        self.pk_columns: list[Column] = [(c, self.mapper.types[c]) for c in shape.pk]
        self.exact = sql_exact(self.columns)
        self.item_digest = item_digester(self.mapper, self.columns)
        self._pk_decode = [(self.mapper.attributes[c], self.mapper.types[c], self.mapper.override(c))
                           for c in shape.pk]
        self.digest = digest_sql(self.columns) if self.exact else ""
        self.target = settings.dynamodb.table_prefix + mapping.target_name

    @staticmethod
    def supports(mapper: TableMapper, shape: TableShape) -> str:
        """Why the checksum method cannot compare this table ("" when it can)."""
        if mapper.mapping.embed is not None:
            return f"it is embedded in {mapper.mapping.embed.parent}: compared entry by entry"
        if not shape.pk:
            return "the table has no primary key"
        missing = [c for c in shape.pk if c not in mapper.attributes]
        if missing:
            return f"primary-key column(s) {missing} are not mapped (tables[].exclude)"
        if not orderable([(c, mapper.types[c]) for c in shape.pk]):
            return "its primary key has text columns, which MySQL orders by collation"
        return ""

    # ----------------------------------------------------------------- the passes

    def run(self) -> RangeReport:
        started = time.monotonic()
        report = RangeReport(self.mapping.source, "checksum" if self.exact else "checksum-stream")
        his = self.reader.boundaries(self.shape, self.options.chunk_rows,
                                     on_chunk=lambda n: self.progress("boundaries", n, None))
        ranges = [Range(his[i - 1] if i else None, hi) for i, hi in enumerate(his)]
        report.ranges = len(ranges)
        his_keys = [order_key(h) if h is not None else None for h in his]
        with ThreadPoolExecutor(1) as pool:
            mysql_pass = pool.submit(self._fold_mysql, ranges)
            report.tombstones, report.dynamodb_items = self._fold_dynamodb(ranges, his_keys)
            mysql_pass.result()
        report.mysql_rows = sum(r.mysql.count for r in ranges)
        differing = [(i, r) for i, r in enumerate(ranges) if not r.equal]
        report.ranges_differing = len(differing)
        if differing:
            items = self._items_of(differing, his_keys)
            report.dynamodb_items_refetched = sum(len(v) for v in items.values())
            for n, (i, r) in enumerate(differing):
                self.progress("bisecting", n + 1, len(differing))
                report.found += self._bisect(r.lo, r.hi, r.mysql, items.get(i, []))
            if report.found and self.options.settle_s > 0:
                self.sleep(self.options.settle_s)
                report.found = self.recheck(report.found)
        report.mysql_rows_fetched = self.reader.rows_fetched
        report.seconds = time.monotonic() - started
        return report

    def _fold_mysql(self, ranges: list[Range]) -> None:
        for n, r in enumerate(ranges):
            if self.exact:
                r.mysql = self.reader.fold(self.shape, self.digest, r.lo, r.hi)
            else:
                fold = Fold()
                for row in self.reader.rows(self.shape, r.lo, r.hi):
                    fold.add(row_digest(self._project(row), self.columns))
                r.mysql = fold
            self.progress("mysql", n + 1, len(ranges))

    def _project(self, row: Row) -> Row:
        return {c: row.get(c) for c in self.mapper.attributes}

    def _item(self, raw: dict[str, Any]) -> _Item:
        row = self.mapper.to_row(raw)
        pk = tuple(row[c] for c in self.shape.pk)
        return _Item(order_key(pk), pk, row_digest(row, self.columns), row)

    def _fold_dynamodb(self, ranges: list[Range], his: list[OrderKey | None]) -> tuple[int, int]:
        """One parallel scan; returns (tombstones, live items)."""
        lock = threading.Lock()
        counts = [0, 0]

        def segment(n: int) -> None:
            folds: dict[int, Fold] = {}
            tomb = live = 0
            for page in self._scan(n, None):
                for raw in page:
                    if not owned_by(raw, self.mapping.source):
                        continue
                    if is_tombstone(raw):
                        tomb += 1
                        continue
                    live += 1
                    pk = tuple(decode_value(ct, o, raw.get(a)) for a, ct, o in self._pk_decode)
                    folds.setdefault(locate(his, order_key(pk)), Fold()).add(self.item_digest(raw))
                with lock:
                    counts[1] += len(page)
                    self.progress("dynamodb", counts[1], None)
            with lock:
                for i, fold in folds.items():
                    ranges[i].dynamodb.merge(fold)
                counts[0] += tomb

        with ThreadPoolExecutor(self.options.segments) as pool:
            list(pool.map(segment, range(self.options.segments)))
        live_items = sum(r.dynamodb.count for r in ranges)
        return counts[0], live_items

    def _scan(self, segment: int, filter_: dict[str, Any] | None) -> Iterator[list[dict[str, Any]]]:
        kwargs: dict[str, Any] = {"TableName": self.target, "Segment": segment,
                                  "TotalSegments": self.options.segments, "ConsistentRead": True}
        if filter_:
            kwargs.update(filter_)
        while True:
            with dynamo_errors("scanning the table", self.target):
                page = self.client.scan(**kwargs)
            yield page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _range_filter(self, differing: list[tuple[int, Range]]) -> dict[str, Any] | None:
        """A scan filter on the first key column's attribute covering the differing ranges, when
        that attribute holds the column's own value (no type override) and the filter stays small."""
        column = self.shape.pk[0]
        if len(differing) > 40 or self.mapping.types.get(column, "default") != "default":
            return None
        ct = self.mapper.types[column]
        clauses, values = [], {}
        for n, (_, r) in enumerate(differing):
            parts = []
            if r.lo is not None:
                values[f":lo{n}"] = encode_value(ct, "default", r.lo[0])
                parts.append(f"#k >= :lo{n}")  # the first column alone: >= keeps composite keys
            if r.hi is not None:
                values[f":hi{n}"] = encode_value(ct, "default", r.hi[0])
                parts.append(f"#k <= :hi{n}")
            if not parts:
                return None
            clauses.append("(" + " AND ".join(parts) + ")")
        return {"FilterExpression": " OR ".join(clauses),
                "ExpressionAttributeNames": {"#k": self.mapper.attributes[column]},
                "ExpressionAttributeValues": values}

    def _items_of(self, differing: list[tuple[int, Range]],
                  his: list[OrderKey | None]) -> dict[int, list[_Item]]:
        """The live items of the differing ranges, from one more scan."""
        wanted = {i for i, _ in differing}
        filter_ = self._range_filter(differing)
        lock = threading.Lock()
        out: dict[int, list[_Item]] = {}

        def segment(n: int) -> None:
            mine: dict[int, list[_Item]] = {}
            for page in self._scan(n, filter_):
                for raw in page:
                    if is_tombstone(raw) or not owned_by(raw, self.mapping.source):
                        continue
                    item = self._item(raw)
                    i = locate(his, item.key)
                    if i in wanted:
                        mine.setdefault(i, []).append(item)
            with lock:
                for i, items in mine.items():
                    out.setdefault(i, []).extend(items)

        with ThreadPoolExecutor(self.options.segments) as pool:
            list(pool.map(segment, range(self.options.segments)))
        return out

    # ----------------------------------------------------------------- bisection

    def _bisect(self, lo: Key | None, hi: Key | None, mysql: Fold, items: list[_Item]) -> list[Found]:
        dynamo = Fold()
        for it in items:
            dynamo.add(it.digest)
        if dynamo == mysql:
            return []
        if mysql.count <= self.options.leaf_rows or not self.exact:
            return self._leaf(lo, hi, items)
        mid = self.reader.key_at(self.shape, lo, hi, mysql.count // 2 - 1)
        if mid is None:  # the range shrank meanwhile: compare what is there
            return self._leaf(lo, hi, items)
        left = self.reader.fold(self.shape, self.digest, lo, mid)
        right = mysql.minus(left)
        cut = order_key(mid)
        return (self._bisect(lo, mid, left, [it for it in items if it.key <= cut])
                + self._bisect(mid, hi, right, [it for it in items if it.key > cut]))

    def _leaf(self, lo: Key | None, hi: Key | None, items: list[_Item]) -> list[Found]:
        rows = self.reader.rows(self.shape, lo, hi)
        mysql = {self.mapper.key_text(r): self._project(r) for r in rows}
        dynamo = {self.mapper.key_text(it.row): it.row for it in items}
        pks = {self.mapper.key_text(r): tuple(r[c] for c in self.shape.pk) for r in rows}
        pks.update({self.mapper.key_text(it.row): it.pk for it in items})
        return [Found(d, mysql.get(d.key), dynamo.get(d.key), pks[d.key])
                for d in diff_tables(self.mapping.source, mysql, dynamo)]

    # ----------------------------------------------------------------- settle

    def recheck(self, found: list[Found]) -> list[Found]:
        """The differences that persist when their keys are read again from both stores."""
        keyed = {f.difference.key: f for f in found}
        rows = self._mysql_rows([f.pk for f in found])
        items = self._dynamodb_rows(found)
        out = []
        for key, f in keyed.items():
            m, d = rows.get(key), items.get(key)
            for diff in diff_tables(self.mapping.source, {key: m} if m else {}, {key: d} if d else {}):
                out.append(Found(diff, m, d if d is not None else f.dynamodb, f.pk))
        return out

    def _mysql_rows(self, pks: list[Key]) -> dict[str, Row]:
        chunk = self.src.read_keys(self.shape, pks)
        self.reader.rows_fetched += len(chunk.rows)
        return {self.mapper.key_text(r): self._project(r) for r in chunk.rows}

    def _dynamodb_rows(self, found: list[Found]) -> dict[str, Row]:
        out: dict[str, Row] = {}
        for f in found:
            image = f.mysql or f.dynamodb
            if image is None:
                continue
            with dynamo_errors("reading an item", self.target):
                raw = self.client.get_item(TableName=self.target, Key=self.mapper.key(image),
                                           ConsistentRead=True).get("Item")
            if raw and not is_tombstone(raw):
                row = self.mapper.to_row(raw)
                out[self.mapper.key_text(row)] = row
        return out


def reconcile_ranges(settings: Settings, mapping: TableMapping, src: SnapshotSource, reader: RangeReader,
                     client: Any, options: RangeOptions | None = None, *,
                     record: ControlStore | None = None, progress: Progress | None = None,
                     sleep: Callable[[float], None] = time.sleep) -> RangeReport:
    """Reconcile one table by checksum ranges (the caller checked :meth:`RangeReconciler.supports`)."""
    shape = src.table_shape(mapping.database, mapping.table)
    report = RangeReconciler(settings, mapping, shape, src, reader, client, options, progress=progress,
                             sleep=sleep).run()
    for f in report.found[:100]:
        d = f.difference
        log.warning("data_validation_failed", marker="Data validation failed", table=mapping.source,
                    key=d.key, kind=d.kind, fields=sorted(d.fields))
        log.debug("data_validation_failed_values", table=mapping.source, diff=describe(d))
    if record is not None:
        record.incr_many({names.VALIDATION_PASSED: report.compared - len(report.found),
                          names.VALIDATION_FAILED: len(report.found)})
    return report


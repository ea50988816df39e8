"""Embedded children against one table per table: the writer's rows/s on the same rows (issue 12).

Same run, same DynamoDB, same rows: orders, each with ``CHILDREN`` order items, as the writer's
change events (decoded, mapped, coalesced per batch, applied: :func:`consumers.writer.batch.plan_batch`
and the :class:`~consumers.writer.applier.ConditionalApplier` in the endpoint's default mode),
written once with each item as an item of its own table (``orders``, ``order_items``), and once
with the items embedded in their order's item (``embed: {parent: orders, as: items}``: one
conditional UpdateItem per child on its entry, the order itself an UpdateItem that keeps them).
Kafka is left out on purpose: both runs would pay the same for it. The two models alternate
(twice each) so that a drift of DynamoDB Local over the run does not favour either.

Reports rows/s of each and the ratio embedded / one-to-one (target >= 0.7).

Run with the stack's environment: ``.venv/bin/python -m bench bench_embedded``.
"""

from __future__ import annotations

import os
import time
import uuid
from decimal import Decimal
from typing import Any

from consumers.writer.applier import ConditionalApplier, default_apply_mode, make_client
from consumers.writer.batch import MapperCache, RawMessage, plan_batch
from consumers.writer.tables import TableSpec, ensure_tables
from replicator.events import ChangeEvent, Position, Temporal, TxInfo, schema_fingerprint
from replicator.mapping import TableMapper
from replicator.settings import Settings, load_settings

ORDERS = int(os.environ.get("BENCH_EMBEDDED_ORDERS", "300"))
CHILDREN = 5
BATCH = 500  # messages per writer batch
BUDGET_S = 420

ORDER_COLUMNS = (("id", "bigint(20)"), ("user_id", "int(11)"), ("total", "decimal(10,2)"),
                 ("placed", "datetime(6)"))
ITEM_COLUMNS = (("id", "bigint(20)"), ("order_id", "bigint(20)"), ("user_id", "int(11)"),
                ("sku", "varchar(40)"), ("qty", "int(11)"), ("price", "decimal(10,2)"))


def _events(db: str) -> list[ChangeEvent]:
    """Each order's insert, then its children's inserts, as one transaction's events would come."""
    out: list[ChangeEvent] = []
    version = 1000
    for o in range(ORDERS):
        order = {"id": o, "user_id": o % 50, "total": Decimal("12.50"),
                 "placed": Temporal("datetime", "2026-11-27T10:00:00.000000")}
        rows: list[tuple[str, tuple[tuple[str, str], ...], dict[str, Any]]] = [
            ("orders", ORDER_COLUMNS, order)]
        for c in range(CHILDREN):
            rows.append(("order_items", ITEM_COLUMNS, {
                "id": o * 100 + c, "order_id": o, "user_id": o % 50, "sku": f"sku-{c}", "qty": c + 1,
                "price": Decimal("2.50")}))
        for table, columns, row in rows:
            version += 2
            out.append(ChangeEvent(op="c", db=db, table=table, pk={"id": row["id"]}, before=None, after=row,
                                   pos=Position("mysql-bin.000001", version), version=version, ts_ms=0,
                                   tx=TxInfo(str(version), 0), schema=schema_fingerprint(columns),
                                   columns=columns))
    return out


def _settings(db: str, prefix: str, embedded: bool) -> Settings:
    orders: dict[str, Any] = {"source": f"{db}.orders", "target": "orders",
                              "key": {"pk": "USER#{user_id}", "sk": "ORDER#{id:010d}"}}
    items: dict[str, Any] = ({"source": f"{db}.order_items", "embed": {
        "parent": f"{db}.orders", "as": "items", "on": {"order_id": "id", "user_id": "user_id"}}}
        if embedded else {"source": f"{db}.order_items", "target": "order_items"})
    return load_settings(dynamodb={"table_prefix": prefix}, tables=[orders, items], log={"level": "warning"})


def _run(client: Any, settings: Settings, events: list[ChangeEvent]) -> float:
    """Rows/s of the writer's batch path over ``events`` into fresh tables."""
    mappers = {t.source: TableMapper(t, ORDER_COLUMNS if t.table == "orders" else ITEM_COLUMNS, ("id",))
               for t in settings.tables}
    prefix = settings.dynamodb.table_prefix
    specs = [TableSpec(prefix + t.target_name, t.source, mappers[t.source].key_attributes)
             for t in settings.tables if t.embed is None]
    ensure_tables(client, specs, create=True, stream=False)
    parents = {t.source: mappers[t.source] for t in settings.tables if settings.children(t.source)}
    cache = MapperCache(settings, {t.source: ("id",) for t in settings.tables}, parents)
    messages = [RawMessage("t", 0, i, e.key_bytes(), e.to_json()) for i, e in enumerate(events)]
    applier = ConditionalApplier(client, mode=default_apply_mode(settings.dynamodb.endpoint_url),
                                 concurrency=settings.dynamodb.max_concurrency)
    applier.start()
    started = time.perf_counter()
    try:
        for start in range(0, len(messages), BATCH):
            plan = plan_batch(messages[start:start + BATCH], cache, time.time(), 3600)
            if plan.dead_letters:
                raise RuntimeError(f"dead letters in the benchmark: {plan.dead_letters[0]}")
            results = applier.apply(plan.writes)
            bad = [r for r in results if r.outcome == "rejected"]
            if bad:
                raise RuntimeError(f"DynamoDB rejected a write: {bad[0].error}")
    finally:
        applier.close()
    return len(events) / (time.perf_counter() - started)


def _drop(client: Any, prefix: str) -> None:
    for name in client.list_tables(Limit=100)["TableNames"]:
        if name.startswith(prefix):
            client.delete_table(TableName=name)


def main() -> dict[str, Any]:
    run = "be" + uuid.uuid4().hex[:8]
    base = load_settings()
    client = make_client(base)
    events = _events(run)
    rates: dict[str, list[float]] = {"one_to_one": [], "embedded": []}
    try:
        for attempt in range(2):
            for model in ("one_to_one", "embedded"):
                settings = _settings(run, f"{run}-{attempt}{model[0]}-", embedded=model == "embedded")
                rates[model].append(_run(client, settings, events))
                _drop(client, settings.dynamodb.table_prefix)
    finally:
        _drop(client, run)
    flat, emb = max(rates["one_to_one"]), max(rates["embedded"])
    figures = {"rows": len(events), "children_per_order": CHILDREN,
               "apply_mode": default_apply_mode(base.dynamodb.endpoint_url),
               "one_to_one_rows_per_s": round(flat, 1), "embedded_rows_per_s": round(emb, 1),
               "ratio_embedded_vs_one_to_one": round(emb / flat, 2), "target_ratio": 0.7,
               "runs": {k: [round(v, 1) for v in vs] for k, vs in rates.items()}}
    print(f"one table per table: {flat:,.0f} rows/s; embedded children: {emb:,.0f} rows/s; "
          f"ratio {emb / flat:.2f} (target >= 0.7)")
    return figures


if __name__ == "__main__":
    main()

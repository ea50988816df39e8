"""Items whose key template is not the primary key: a key change is applied right in any order.

Regression of issue 12's lost rows: users keyed ``USER#{email}``; an update of a user's ``id``
that keeps the email is a delete of the old id and an insert of the new one (different Kafka
partitions, so the writer applies them in either order) on one item key. The insert half sorts
one above the delete half, so the item ends up as the new row whatever the order.
"""

from __future__ import annotations

from itertools import permutations

from hypothesis import given
from hypothesis import strategies as st

from replicator.events import ChangeEvent
from replicator.mapping import TableMapper
from replicator.mapping.conditional import ConditionalWrite, writes_for_event
from replicator.reader.changes import TxContext, build_events
from replicator.reader.items import RowsChange
from replicator.reader.schema import ColumnSpec, T, build_schema
from replicator.settings import KeySpec, TableMapping
from replicator.testing import MemoryDynamoDB

SCHEMA = build_schema("shop", "users", (ColumnSpec("id", T.LONG), ColumnSpec("email", T.VARCHAR),
                                        ColumnSpec("name", T.VARCHAR)), ("id",))
MAPPER = TableMapper(TableMapping(source="shop.users", key=KeySpec(pk="USER#{email}", sk="#META")),
                     (("id", "int"), ("email", "varchar(120)"), ("name", "varchar(80)")), ("id",))
TABLE = "users"


def _events(kind: str, rows: list[tuple[dict[str, object], ...]], offset: int) -> list[ChangeEvent]:
    change = RowsChange(SCHEMA, kind, rows, "mysql-bin.000001", offset, 1_700_000_000)  # type: ignore[arg-type]
    return build_events(change, TxContext(f"0-1-{offset}", f"0-1-{offset}"), 0)


def _writes(events: list[ChangeEvent]) -> list[ConditionalWrite]:
    return [w for e in events for w in writes_for_event(MAPPER, TABLE, e, 0.0, 3600)]


def _final(writes: list[ConditionalWrite]) -> dict[str, object] | None:
    db = MemoryDynamoDB()
    for w in writes:
        db.put(w)
    item = db.get(TABLE, MAPPER.key({"email": "a@x", "id": 0, "name": None}))
    return None if item is None else {"id": int(item["id"]["N"]), "name": item["name"]["S"]}


def test_an_id_change_that_keeps_the_email_leaves_the_new_row_whatever_the_order() -> None:
    before = {"id": 1, "email": "a@x", "name": "Ada"}
    events = _events("insert", [(before,)], 1000) + _events("update", [(before, {**before, "id": 2})], 2000)
    writes = _writes(events)
    assert len(writes) == 3  # insert; then the key change: delete id 1, insert id 2 (one item key)
    for order in permutations(writes):
        assert _final(list(order)) == {"id": 2, "name": "Ada"}, [w.version for w in order]


@given(st.lists(st.sampled_from(["rekey", "rename"]), min_size=1, max_size=6), st.randoms())
def test_any_history_of_id_changes_and_updates_ends_as_the_last_row_in_any_order(
        steps: list[str], rnd: object) -> None:
    row: dict[str, object] = {"id": 1, "email": "a@x", "name": "n0"}
    events = _events("insert", [(row,)], 1000)
    for i, step in enumerate(steps, start=1):
        new = {**row, "id": int(str(row["id"])) + 1} if step == "rekey" else {**row, "name": f"n{i}"}
        events += _events("update", [(row, new)], 1000 + 100 * i)
        row = new
    writes = _writes(events)
    rnd.shuffle(writes)  # type: ignore[attr-defined]
    assert _final(writes) == {"id": row["id"], "name": row["name"]}

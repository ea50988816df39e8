"""Row-level comparison of MySQL and DynamoDB, after the item has been mapped back to a row.

Pure: both sides arrive as ``{key text: row}`` in the event value model, so a difference is a
real difference of data, not of representation (``Decimal('1.50')`` vs ``"1.50"``).
The text of :func:`describe` is the guide's ``Data validation failed`` line: a
field-by-field account of what differs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from replicator.events import JsonDoc, Row, Temporal, Value

DiffKind = Literal["missing_in_dynamodb", "extra_in_dynamodb", "different"]


@dataclass(frozen=True)
class Difference:
    table: str
    key: str
    kind: DiffKind
    fields: dict[str, tuple[Value, Value]] = field(default_factory=dict)  # column -> (mysql, dynamodb)


def diff_row(mysql: Row, dynamo: Row) -> dict[str, tuple[Value, Value]]:
    """Columns whose values differ; a column missing on one side compares as absent (None)."""
    out: dict[str, tuple[Value, Value]] = {}
    for col in sorted(mysql.keys() | dynamo.keys()):
        a, b = mysql.get(col), dynamo.get(col)
        if a != b or type(a) is not type(b):
            out[col] = (a, b)
    return out


def diff_tables(table: str, mysql: Mapping[str, Row], dynamo: Mapping[str, Row]) -> list[Difference]:
    diffs: list[Difference] = []
    for key in sorted(mysql.keys() | dynamo.keys()):
        if key not in dynamo:
            diffs.append(Difference(table, key, "missing_in_dynamodb"))
        elif key not in mysql:
            diffs.append(Difference(table, key, "extra_in_dynamodb"))
        else:
            fields = diff_row(mysql[key], dynamo[key])
            if fields:
                diffs.append(Difference(table, key, "different", fields))
    return diffs


def describe(d: Difference) -> str:
    if d.kind != "different":
        return f"{d.table} {d.key}: {d.kind.replace('_', ' ')}"
    parts = [f"{col}: mysql={a!r} dynamodb={b!r}" for col, (a, b) in d.fields.items()]
    return f"{d.table} {d.key}: " + "; ".join(parts)


# --------------------------------------------------------------------------- classes of difference

ValueClass = Literal[
    "timestamp_precision", "null_vs_empty", "number_decimal", "binary", "key_transform", "other",
]


def _is_empty(v: Value) -> bool:
    return v in ("", b"") or (isinstance(v, frozenset) and not v) or (isinstance(v, JsonDoc) and v.value in
                                                                     ("", [], {}, None))


def _fractionless(t: Temporal) -> str:
    return t.text.removesuffix("Z").split(".")[0]


def classify(column: str, mysql: Value, dynamo: Value, *, key_columns: Sequence[str] = ()) -> ValueClass:
    """Why one column differs, in the classes an operator acts on (the guide's failure causes).

    ``key_columns``: the columns the DynamoDB key is built from; a difference there is a key
    transform (a template or type that does not carry the value back unchanged).
    """
    if column in key_columns:
        return "key_transform"
    if (mysql is None and _is_empty(dynamo)) or (dynamo is None and _is_empty(mysql)):
        return "null_vs_empty"
    if isinstance(mysql, Temporal) and isinstance(dynamo, Temporal) and \
            _fractionless(mysql) == _fractionless(dynamo):
        return "timestamp_precision"
    numeric = (int, float, Decimal)
    if isinstance(mysql, numeric) and isinstance(dynamo, numeric) and not isinstance(mysql, bool):
        return "number_decimal"
    if isinstance(mysql, Decimal | float) or isinstance(dynamo, Decimal | float):
        return "number_decimal"
    if isinstance(mysql, bytes) or isinstance(dynamo, bytes):
        return "binary"
    return "other"


# --------------------------------------------------------------------------- one key, classified

MismatchKind = Literal["missing", "extra", "value"]


@dataclass(frozen=True)
class Mismatch:
    """One key whose stores disagree: what kind, and per differing column its class (no values,
    so it can be logged at warning level: rows may hold personal data)."""

    table: str
    key: str
    kind: MismatchKind  # missing in DynamoDB | extra in DynamoDB | values differ
    fields: dict[str, str] = field(default_factory=dict)  # column -> class of difference

    def classes(self) -> list[str]:
        """What to count: each differing column's class, or the kind for a missing/extra row."""
        return list(self.fields.values()) or [self.kind]


def compare(table: str, key: str, mysql: Row | None, dynamo: Row | None,
            key_columns: Sequence[str]) -> Mismatch | None:
    """MySQL's row against the row DynamoDB's item maps back to (None: absent or a tombstone)."""
    if mysql is None and dynamo is None:
        return None
    if dynamo is None:
        return Mismatch(table, key, "missing")
    if mysql is None:
        return Mismatch(table, key, "extra")
    diff = diff_row(mysql, dynamo)
    if not diff:
        return None
    return Mismatch(table, key, "value", {c: classify(c, a, b, key_columns=key_columns)
                                         for c, (a, b) in diff.items()})


def describe_mismatch(m: Mismatch) -> str:
    """One line naming the key and what differs (column classes, no values)."""
    if m.kind != "value":
        return f"{m.table} {m.key}: {'missing in dynamodb' if m.kind == 'missing' else 'extra in dynamodb'}"
    return f"{m.table} {m.key}: " + ", ".join(f"{c} ({k})" for c, k in m.fields.items())

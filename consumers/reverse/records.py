"""One DynamoDB Streams record -> what MySQL must do with it. Pure: no clients, no I/O.

Rules, in order (the record's image is the NEW one, the OLD one for a ``REMOVE``):

1. Only application writes: an image whose ``_origin`` is not ``app`` is skipped
   (``origin_cdc``, ``origin_snapshot``...). Those are the pipeline's own writes of MySQL
   changes; the reverse replication's MySQL writes come back that way too (as ``cdc``), so it
   never applies its own echo.
2. Only this mapping's items: on a DynamoDB table shared by several sources, an item belongs
   to the source its ``_table`` names; an item without one (written before items named their
   table) to the source whose key template produced its key (``USER#{id}`` vs ``ORDER#{id}``);
   any other item is skipped (``not_mapped``).
3. A tombstone (NEW image with ``_deleted``) or a ``REMOVE`` of a live item is a delete by
   primary key, read from the OLD image (the live item the application deleted), or from the
   item's key when that is made of the primary key alone; a ``REMOVE`` of a tombstone (its TTL
   ran out) is skipped.
4. Anything else is an upsert of the row :meth:`TableMapper.to_row` reads from the item,
   unless MySQL could not hold it: an attribute with no column, a value MySQL would change
   (:attr:`TablePlan.fit_columns`) or refuse (the sink), an item whose attributes disagree with
   its key. Those are :class:`Rejected` (dead letters), never dropped.

The reverse replication writes rows by primary key, read from the item's attributes, so a key
may be made of any columns (``USER#{user_id}`` / ``ORDER#{created_at:%Y-%m-%d}#{id}``): a row
that moves between two items when a key column changes reaches MySQL in the right order through
the versions the sink keeps per row (:mod:`.order`). :func:`check_reversible` refuses, naming
it, a mapping whose rows cannot be written back (no primary key, primary-key columns excluded).

An item of a parent with embedded children (docs/model.md) is several rows:
:func:`translate_all` reads a record of it as the parent's own change, when the parent row
changed, and the changes of the entries the application wrote (their own ``_origin``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from consumers.reverse.model import Change, Rejected, Skipped, Translated
from consumers.reverse.plan import TablePlan
from replicator.errors import ConfigError, MappingError
from replicator.events import Row, Temporal, Value
from replicator.mapping import (
    METADATA_ATTRS,
    ORIGIN_APP,
    ORIGIN_ATTR,
    VERSION_ATTR,
    KeyAttribute,
    check_row_fits,
    is_tombstone,
)
from replicator.mapping.coltypes import ColumnType
from replicator.mapping.embedded import ENTRY_KEY_SEPARATOR, EmbeddedMapper, entry_version
from replicator.mapping.names import DELETED_ATTR, PARENT_DELETED_ATTR, TABLE_ATTR
from replicator.mapping.templates import parse_template, placeholders
from replicator.mapping.values import decode_value

#: docs/design.md: version = generation << 52 | base; an application write's base is its
#: time in microseconds since the epoch.
GENERATION_SHIFT = 52
_BASE_MASK = (1 << GENERATION_SHIFT) - 1
_DAY_S = 86_400.0


def generation_of(version: int) -> int:
    return version >> GENERATION_SHIFT


def write_time(version: int, approximate: float | None) -> float:
    """When an application write happened: its version's microseconds when they are plausible
    (DynamoDB's ApproximateCreationDateTime is whole seconds, whole minutes on DynamoDB Local),
    else the record's approximate time."""
    at = (version & _BASE_MASK) / 1e6
    if at > 0 and (approximate is None or abs(at - approximate) < _DAY_S):
        return at
    return approximate if approximate is not None else at


# --------------------------------------------------------------------------- keys


def _key_text_value(ct: ColumnType, text: str) -> Value:
    """A key column's value back from its text in a key template (``template_text``'s inverse)."""
    kind = ct.kind
    if kind in ("int", "bit", "year"):
        return int(text)
    if kind == "decimal":
        return Decimal(text)
    if kind in ("float", "double"):
        return float(text)
    if kind in ("text", "enum"):
        return text
    if kind in ("binary", "bytes"):
        return bytes.fromhex(text)
    if ct.is_temporal:
        return Temporal(kind, text)  # type: ignore[arg-type]
    raise ValueError(f"a {ct.text} key column cannot be read back from a key template")


def _template_regex(template: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    parts, fields = [], []
    for literal, ph in parse_template(template):
        parts.append(re.escape(literal))
        if ph is not None:
            parts.append("(.+?)")
            fields.append(ph.column)
    return re.compile("".join(parts), re.DOTALL), tuple(fields)


def _normal(av: dict[str, Any] | None) -> tuple[str, Any] | None:
    """A key attribute value compared by meaning (DynamoDB answers ``N`` "1.50" as "1.5")."""
    if not av:
        return None
    ((tag, payload),) = av.items()
    if tag == "N":
        try:
            return tag, Decimal(str(payload))
        except InvalidOperation:
            return tag, payload
    return tag, bytes(payload) if tag == "B" else payload


class ChildRoute:
    """An embedded table: its rows are the entries of one map attribute of its parent's items."""

    def __init__(self, plan: TablePlan, embedded: EmbeddedMapper) -> None:
        self.plan = plan
        self.embedded = embedded
        self.source = plan.source
        self.attribute = embedded.attribute
        self.allowed = (set(plan.mapper.attributes.values()) | set(METADATA_ATTRS)
                        | {a.name for a in plan.mapper.key_attributes})

    def name_row(self, name: str) -> Row | None:
        """The child's primary key read back from its entry's name; None when it cannot be."""
        parts = name.split(ENTRY_KEY_SEPARATOR)
        pk = self.embedded.child.primary_key
        if len(parts) != len(pk):
            return None
        try:
            return {c: _key_text_value(self.embedded.child.types[c], text)
                    for c, text in zip(pk, parts, strict=True)}
        except (ValueError, ArithmeticError):
            return None


class Route:
    """One source table's view of a DynamoDB table: which keys are its items, and its plan."""

    def __init__(self, plan: TablePlan, children: Sequence[ChildRoute] = ()) -> None:
        self.plan = plan
        self.mapper = plan.mapper
        self.source = plan.source
        self.children = {c.attribute: c for c in children}
        self._patterns: list[tuple[KeyAttribute, re.Pattern[str] | None, tuple[str, ...]]] = []
        for attr in self.mapper.key_attributes:
            if attr.template is not None:
                regex, fields = _template_regex(attr.template)
                self._patterns.append((attr, regex, fields))
            else:
                self._patterns.append((attr, None, ()))
        self.allowed = (set(self.mapper.attributes.values()) | set(METADATA_ATTRS)
                        | {a.name for a in self.mapper.key_attributes} | set(self.children))
        #: The key reads back as the primary key: made of its columns alone, none formatted in a
        #: way that loses them (a date format, a NULL default).
        columns: list[str | None] = []
        lossy = False
        for attr, _, fields in self._patterns:
            if attr.template is None:
                columns.append(attr.column)
                continue
            columns.extend(fields)
            lossy |= any(ph.kind == "temporal" or ph.default is not None
                         for ph in placeholders(attr.template))
        self.key_is_pk = not lossy and set(columns) == set(plan.pk)

    def matches(self, keys: dict[str, Any]) -> bool:
        for attr, regex, _ in self._patterns:
            av = keys.get(attr.name)
            if not av or attr.type not in av:
                return False
            if regex is not None and regex.fullmatch(str(av[attr.type])) is None:
                return False
        return True

    def key_row(self, keys: dict[str, Any]) -> Row | None:
        """The primary-key columns read back from an item's key; None when they cannot be (the
        key is not made of the primary key alone: :attr:`key_is_pk`)."""
        if not self.key_is_pk:
            return None
        row: Row = {}
        try:
            for attr, regex, fields in self._patterns:
                av = keys[attr.name]
                if regex is None:
                    assert attr.column is not None
                    row[attr.column] = decode_value(self.mapper.types[attr.column],
                                                    self.mapper.override(attr.column), av)
                    continue
                m = regex.fullmatch(str(av[attr.type]))
                if m is None:
                    return None
                for name, text in zip(fields, m.groups(), strict=True):
                    value = _key_text_value(self.mapper.types[name], text)
                    if row.setdefault(name, value) != value:
                        return None
        except (KeyError, ValueError, ArithmeticError):
            return None
        return row if all(row.get(c) is not None for c in self.plan.pk) else None

    def same_key(self, row: Row, keys: dict[str, Any]) -> bool:
        try:
            mine = self.mapper.key(row)
        except MappingError:
            return False
        return {k: _normal(v) for k, v in mine.items()} == {k: _normal(keys.get(k)) for k in mine}


class Target:
    """A DynamoDB table and the sources written to it (several when they share it)."""

    def __init__(self, name: str, routes: Sequence[Route]) -> None:
        self.name = name
        self.routes = tuple(routes)

    def route(self, keys: dict[str, Any], image: dict[str, Any]) -> Route | None:
        named = (image.get(TABLE_ATTR) or {}).get("S")
        if named is not None:
            return next((r for r in self.routes if r.source == named), None)
        found = [r for r in self.routes if r.matches(keys)]
        if len(found) <= 1:
            return found[0] if found else None
        for r in found:  # templates that both match ("U#{id}", "U#{id}#{n}"): the one that round-trips
            try:
                if not is_tombstone(image) and r.same_key(r.mapper.to_row(image), keys):
                    return r
            except (MappingError, ValueError, ArithmeticError, TypeError):
                continue
        return None


# --------------------------------------------------------------------------- one record


def _approximate(d: dict[str, Any]) -> float | None:
    at = d.get("ApproximateCreationDateTime")
    if isinstance(at, dt.datetime):
        return at.timestamp()
    return float(at) if isinstance(at, int | float) else None


def translate_all(record: dict[str, Any], target: Target) -> list[Translated]:
    """What one stream record asks of MySQL: the item's own row (:func:`translate`) and, for a
    parent with embedded children, the children's rows, in an order foreign keys accept (the
    children's deletes, the parent, the children's upserts)."""
    d = record.get("dynamodb") or {}
    new, old = d.get("NewImage"), d.get("OldImage")
    image = old if record.get("eventName") == "REMOVE" else new
    route = target.route(d.get("Keys") or {}, image) if image else None
    if route is None or not route.children:
        return [translate(record, target)]
    own = translate(record, target) if _parent_changed(new, old) else Skipped("entries_only")
    deletes: list[Translated] = []
    upserts: list[Translated] = []
    for child in route.children.values():
        for x in _entries(child, record, new if record.get("eventName") != "REMOVE" else None, old):
            (deletes if isinstance(x, Change) and x.op == "delete" else upserts).append(x)
    return [*deletes, own, *upserts]


def _parent_changed(new: dict[str, Any] | None, old: dict[str, Any] | None) -> bool:
    """Whether a record of a parent's item changed the parent row itself (not only entries)."""
    if new is None or old is None:
        return True
    return bool(new.get(VERSION_ATTR) != old.get(VERSION_ATTR) or is_tombstone(new) != is_tombstone(old))


def _entries(child: ChildRoute, record: dict[str, Any], new: dict[str, Any] | None,
             old: dict[str, Any] | None) -> list[Translated]:
    """The child rows an item's record changed: each entry the application wrote (its own
    ``_origin``) that differs from the old image, and the live entries the application's write
    removed (a parent delete takes its children)."""
    d = record.get("dynamodb") or {}
    seq = str(d.get("SequenceNumber", ""))
    before = ((old or {}).get(child.attribute) or {}).get("M", {})
    after = ((new or {}).get(child.attribute) or {}).get("M", {})
    out: list[Translated] = []
    for name, av in after.items():
        entry = av.get("M") or {}
        if before.get(name) == av or (entry.get(ORIGIN_ATTR) or {}).get("S") != ORIGIN_APP:
            continue
        version = entry_version(entry) or 0
        at = write_time(version, _approximate(d))
        if entry.get(DELETED_ATTR, {}).get("BOOL"):
            out.append(_child_delete(child, name, before.get(name, {}).get("M"), version, seq, at))
        else:
            out.append(_child_upsert(child, name, entry, version, seq, at))
    writer = new if new is not None else old
    if (writer or {}).get(ORIGIN_ATTR, {}).get("S") == ORIGIN_APP:
        pdel = (new or {}).get(PARENT_DELETED_ATTR) or (writer or {}).get(VERSION_ATTR) or {"N": "0"}
        version = int(pdel["N"])
        at = write_time(version, _approximate(d))
        for name, av in before.items():
            entry = av.get("M") or {}
            if name not in after and not entry.get(DELETED_ATTR, {}).get("BOOL"):
                out.append(_child_delete(child, name, entry, version, seq, at))
    return out


def _child_delete(child: ChildRoute, name: str, old_entry: dict[str, Any] | None, version: int, seq: str,
                  at: float) -> Translated:
    live = old_entry if old_entry and not old_entry.get(DELETED_ATTR, {}).get("BOOL") else None
    return _delete_of(child.plan, live, lambda: child.name_row(name), version, seq, at)


def _child_upsert(child: ChildRoute, name: str, entry: dict[str, Any], version: int, seq: str,
                  at: float) -> Translated:
    plan = child.plan
    key_row = child.name_row(name) or {}
    key_text = plan.mapper.key_text(key_row) if key_row else name

    def rejected(reason: str, what: str) -> Rejected:
        pk = plan.pk_params(key_row) if key_row else ()
        return Rejected(child.source, pk, key_text, reason, f"{child.source} key ({key_text}): {what}",
                        version, seq, at)

    return _upsert_of(plan, entry, child.allowed, lambda row: child.embedded.entry_name(row) == name,
                      "entry", "primary key than its name", rejected, version, seq, at)


def _upsert_of(plan: TablePlan, image: dict[str, Any], allowed: set[str], same_key: Callable[[Row], bool],
               noun: str, key_is: str, rejected: Callable[[str, str], Rejected], version: int, seq: str,
               at: float) -> Translated:
    """An item's (or an entry's) image as the upsert of its MySQL row, or why MySQL cannot take it:
    an attribute without a column, an image that does not read back as a row, a row whose key is
    not the image's own (``same_key``), a value MySQL's column cannot hold."""
    extra = sorted(set(image) - allowed)
    if extra:
        return rejected("attribute_without_column", f"attribute(s) {extra} have no MySQL column")
    try:
        row, params = plan.read_item(image)
    except (MappingError, ValueError, ArithmeticError, TypeError) as exc:
        return rejected("undecodable", f"the {noun} does not read back as a row: {exc}")
    if not same_key(row):
        return rejected("key_mismatch", f"the {noun}'s columns give another {key_is}")
    if plan.fit_columns:
        try:
            check_row_fits(plan.mapper, {c: row[c] for c in plan.fit_columns})
        except MappingError as exc:
            return rejected(exc.reason, str(exc))
    return Change(plan.source, "upsert", plan.pk_of(params), plan.mapper.key_text(row), params, version,
                  seq, at)


def translate(record: dict[str, Any], target: Target) -> Translated:
    """What one stream record asks of MySQL for the item's own row (module docstring)."""
    name = record.get("eventName")
    d = record.get("dynamodb") or {}
    keys: dict[str, Any] = d.get("Keys") or {}
    new, old = d.get("NewImage"), d.get("OldImage")
    image = old if name == "REMOVE" else new
    if not image:
        return Skipped("no_image")
    origin = (image.get(ORIGIN_ATTR) or {}).get("S")
    if origin != ORIGIN_APP:
        return Skipped(f"origin_{origin or 'none'}")
    if name == "REMOVE" and is_tombstone(image):
        return Skipped("tombstone_expired")
    route = target.route(keys, image)
    if route is None:
        return Skipped("not_mapped")
    seq = str(d.get("SequenceNumber", ""))
    version = int((image.get(VERSION_ATTR) or {}).get("N", 0))
    at = write_time(version, _approximate(d))
    if name == "REMOVE" or is_tombstone(image):
        return _delete(route, keys, old, version, seq, at)
    return _upsert(route, keys, image, version, seq, at)


def _delete(route: Route, keys: dict[str, Any], old: dict[str, Any] | None, version: int, seq: str,
            at: float) -> Translated:
    live = old if old and not is_tombstone(old) else None
    return _delete_of(route.plan, live, lambda: route.key_row(keys), version, seq, at)


def _delete_of(plan: TablePlan, live: dict[str, Any] | None, from_key: Callable[[], Row | None], version: int,
               seq: str, at: float) -> Translated:
    """A delete by primary key, the row read from the live old image, else from the key."""
    row = None
    if live is not None:
        try:
            row = plan.mapper.to_row(live)
        except (MappingError, ValueError, ArithmeticError, TypeError):
            row = None
    if row is None or any(row.get(c) is None for c in plan.pk):
        row = from_key()
    if row is None:
        # No live row image and a key that does not read back: the item was absent already
        # (a tombstone over a tombstone), so MySQL has no row to delete.
        return Skipped("delete_of_absent")
    pk = plan.pk_params(row)
    return Change(plan.source, "delete", pk, plan.mapper.key_text(row), pk, version, seq, at)


def _upsert(route: Route, keys: dict[str, Any], image: dict[str, Any], version: int, seq: str,
            at: float) -> Translated:
    plan = route.plan

    def rejected(reason: str, what: str) -> Rejected:
        key_row = route.key_row(keys) or {}
        key_text = route.mapper.key_text(key_row) if key_row else ",".join(
            f"{k}={next(iter(v.values()))}" for k, v in sorted(keys.items()))
        pk = plan.pk_params(key_row) if key_row else ()
        message = what if what.startswith(route.source) else f"{route.source} key ({key_text}): {what}"
        return Rejected(route.source, pk, key_text, reason, message, version, seq, at)

    return _upsert_of(plan, image, route.allowed, lambda row: route.same_key(row, keys), "item",
                      "key than the item's own", rejected, version, seq, at)


# --------------------------------------------------------------------------- start-up checks


def check_reversible(plan: TablePlan) -> None:
    """A mapping the reverse replication can write back by primary key, else :class:`ConfigError`."""
    where = f"tables[source={plan.source}]"
    if not plan.pk:
        raise ConfigError(f"{where}: the MySQL table has no primary key; reverse replication writes rows "
                          f"by primary key")
    missing = plan.missing_key_columns()
    if missing:
        raise ConfigError(f"{where}.exclude removes primary-key column(s) {missing}; reverse replication "
                          f"needs them in DynamoDB to write rows back")


def check_shared(target: Target) -> None:
    """Sources that share a DynamoDB table must have keys that tell their items apart."""
    if len(target.routes) < 2:
        return
    templates = [(r.source, r.mapper.mapping.key.pk, r.mapper.mapping.key.sk) for r in target.routes]
    for i, (source, pk, sk) in enumerate(templates):
        if pk is None:
            raise ConfigError(f"tables[source={source}] shares DynamoDB table {target.name!r} with other "
                              f"sources but has no key template; give each source key.pk templates with "
                              f"distinct literal prefixes, e.g. \"USER#{{id}}\" and \"ORDER#{{id}}\"")
        for other, pk2, sk2 in templates[i + 1:]:
            if (pk, sk) == (pk2, sk2):
                raise ConfigError(f"tables {source} and {other} share DynamoDB table {target.name!r} with "
                                  f"the same key templates; their items cannot be told apart")

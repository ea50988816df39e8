"""The target model as a whole (docs/model.md): which tables share a DynamoDB table, what is
embedded where, which GSIs each table gets. Pure: from the settings alone.

:func:`check_model` refuses, at start-up, a model in which two source tables could write the
same item: tables that share a DynamoDB table need key templates whose literal starts tell
their items apart (``USER#{id}`` + ``#META`` against ``USER#{user_id}`` + ``ORDER#{id}``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from replicator.errors import ConfigError
from replicator.mapping.indexes import template_prefix
from replicator.settings import Settings, TableMapping


def _related(a: str, b: str) -> bool:
    """Could two key parts, starting with these literals, be equal?"""
    return a.startswith(b) or b.startswith(a)


def keys_disjoint(a: TableMapping, b: TableMapping) -> bool:
    """No row of ``a`` and row of ``b`` can map to one item key: their ``key.pk`` templates, or
    their ``key.sk`` templates, start with literals of which neither is the start of the other."""
    if a.key.pk is None or b.key.pk is None:
        return False
    if not _related(template_prefix(a.key.pk), template_prefix(b.key.pk)):
        return True
    if a.key.sk is None or b.key.sk is None:
        return False
    return not _related(template_prefix(a.key.sk), template_prefix(b.key.sk))


@dataclass
class TargetTable:
    """One DynamoDB table of the model and what goes into it."""

    name: str
    sources: list[TableMapping] = field(default_factory=list)
    embedded: dict[str, list[TableMapping]] = field(default_factory=dict)  # parent -> its children


def targets(settings: Settings) -> dict[str, TargetTable]:
    """The model's DynamoDB tables (prefix included), in the order the config first names them."""
    out: dict[str, TargetTable] = {}
    for t in settings.tables:
        if t.embed is not None:
            continue
        name = settings.dynamodb.table_prefix + t.target_name
        target = out.setdefault(name, TargetTable(name))
        target.sources.append(t)
        children = list(settings.children(t.source))
        if children:
            target.embedded[t.source] = children
    return out


def check_model(settings: Settings) -> None:
    """Refuse a model in which two tables could write one item, naming both (exit 2)."""
    for target in targets(settings).values():
        for i, a in enumerate(target.sources):
            for b in target.sources[i + 1:]:
                if not keys_disjoint(a, b):
                    raise ConfigError(
                        f"tables {a.source} and {b.source} share DynamoDB table {target.name!r}, but their "
                        f"keys could give two rows one item (key.pk {a.key.pk!r} / {b.key.pk!r}, key.sk "
                        f"{a.key.sk!r} / {b.key.sk!r}); give their key.pk or key.sk templates literal starts "
                        f"that tell them apart, e.g. sk \"#META\" and \"ORDER#{{id}}\"")
    for t in settings.tables:
        for c in t.collections:
            for member in c.members:
                other = settings.table(member)
                if other is None or other.embed is not None or other.target_name != t.target_name:
                    raise ConfigError(f"tables[source={t.source}].collections[{c.name}]: member {member!r} "
                                      f"must be a mapped table with the same target ({t.target_name!r})")
                if t.key.pk is None or other.key.pk is None:
                    raise ConfigError(f"tables[source={t.source}].collections[{c.name}]: a collection needs "
                                      f"key.pk templates on {t.source} and {member}")
                if template_prefix(t.key.pk) != template_prefix(other.key.pk):
                    raise ConfigError(f"tables[source={t.source}].collections[{c.name}]: {member}'s "
                                      f"key.pk {other.key.pk!r} does not start like {t.key.pk!r}; a "
                                      f"collection is the items of one partition key")


def explain(settings: Settings) -> list[str]:
    """``replicator check``'s description of the model, one line each."""
    lines = []
    for target in targets(settings).values():
        shared = len(target.sources) > 1
        lines.append(f"DynamoDB table {target.name}" + (" (shared: an item collection)" if shared else ""))
        for t in target.sources:
            key = (f"pk {t.key.pk!r}" + (f", sk {t.key.sk!r}" if t.key.sk else "")) if t.key.pk \
                else "key: its primary key"
            lines.append(f"  {t.source}: {key}")
            for child in target.embedded.get(t.source, []):
                assert child.embed is not None
                on = ", ".join(f"{c} = {p}" for c, p in child.embed.on.items())
                lines.append(f"    embeds {child.source} as map {child.embed.as_!r} (on {on}), "
                             f"one entry per row by its primary key")
            for ix in t.indexes:
                lines.append(f"    GSI {ix.name}: pk {ix.pk}" + (f", sk {ix.sk}" if ix.sk else ""))
            for c in t.collections:
                lines.append(f"    collection {c.name!r}: {t.source} + {', '.join(c.members)} in one Query")
    return lines

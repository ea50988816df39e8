"""Two rows must never map to one item: a key template must cover a unique index.

With ``key.pk``/``key.sk`` templates over columns other than the primary key (``USER#{email}``),
two MySQL rows that agree on those columns would share one DynamoDB item and overwrite each
other without a word. MySQL rules that out only if the columns the templates use include every
column of some unique index (the primary key counts). Pure: the indexes come from
:func:`replicator.catalog.read_table_shape`.
"""

from __future__ import annotations

from collections.abc import Sequence

from replicator.errors import ConfigError
from replicator.mapping.templates import template_fields
from replicator.settings import TableMapping


def key_columns(mapping: TableMapping, primary_key: Sequence[str]) -> set[str]:
    """The columns the item key is built from (the primary key's when there is no template)."""
    spec = mapping.key
    if spec.pk is None:
        return set(primary_key)
    return set(template_fields(spec.pk)) | (set(template_fields(spec.sk)) if spec.sk else set())


def check_key_is_unique(mapping: TableMapping, primary_key: Sequence[str],
                        unique_indexes: Sequence[Sequence[str]]) -> None:
    """Refuse (ConfigError, exit 2) a key whose columns cover no unique index of the table."""
    used = key_columns(mapping, primary_key)
    candidates = [tuple(primary_key), *map(tuple, unique_indexes)] if primary_key else \
        [tuple(u) for u in unique_indexes]
    if any(u and set(u) <= used for u in candidates):
        return
    known = ", ".join(f"({', '.join(u)})" for u in candidates if u) or "none"
    raise ConfigError(
        f"tables[source={mapping.source}].key: the templates use column(s) {sorted(used)}, which cover no "
        f"unique index of the table (unique indexes: {known}), so two rows could map to one DynamoDB item "
        "and silently overwrite each other. Add the missing columns of a unique index (e.g. the primary "
        "key) to key.pk or key.sk, or add a unique index on these columns in MySQL.")

"""Key templates: ``USER#{id}``, ``ORDER#{created_at:%Y-%m-%d}#{id:010d}``, ``{parent_id|ROOT}``.

A placeholder is ``{column[:format][|default]}``:

- ``format`` for a DATE/DATETIME/TIMESTAMP column is made of ``%Y %m %d %H %M %S %f %%`` and
  literal text (read from MySQL's own text of the value, so zero dates work too); for an
  integer column it is ``0<N>d``, zero-padded to N digits. Both keep the sort order of the
  column (date fields written from the year down): DynamoDB compares sort keys as strings, and
  these strings sort as MySQL sorts the values. A negative or too long integer cannot, and is
  refused as unmappable (dead-lettered, counted), never mis-sorted.
- ``default`` stands for NULL or an empty value (``{parent_id|ROOT}``); without one, such a
  value cannot make a key.

Pure: the mapper renders (:meth:`TableMapper.key`), the checks read :func:`template_fields`.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from functools import lru_cache

from replicator.errors import ConfigError
from replicator.events import Temporal, Value

_INT_FORMAT = re.compile(r"0(\d{1,2})d")
_DIRECTIVE = re.compile(r"%(.)")
_TEMPORAL_SLICES = {"Y": (0, 4), "m": (5, 7), "d": (8, 10), "H": (11, 13), "M": (14, 16), "S": (17, 19)}


class TemplateValueError(ValueError):
    """A value a placeholder's format cannot render in sort order (e.g. a negative number)."""


@dataclass(frozen=True)
class Placeholder:
    column: str
    format: str = ""  # "" (the value's text), "0<N>d" or a "%Y-%m-%d"-style date format
    default: str | None = None  # the text for NULL / empty

    @property
    def kind(self) -> str:
        """``"text"``, ``"integer"`` or ``"temporal"``."""
        if not self.format:
            return "text"
        return "integer" if _INT_FORMAT.fullmatch(self.format) else "temporal"


@lru_cache(maxsize=512)
def parse_template(template: str) -> tuple[tuple[str, Placeholder | None], ...]:
    """``(literal, placeholder)`` pairs; ConfigError naming the template when it is malformed."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"key template {template!r}: {exc} "
                          f"(write literal braces as '{{{{' and '}}}}')") from exc
    out: list[tuple[str, Placeholder | None]] = []
    for literal, name, spec, conv in parts:
        if name is None:
            out.append((literal, None))
            continue
        if conv:
            raise ConfigError(f"key template {template!r}: no !{conv} conversions; write "
                              "{column}, {column:format} or {column|default}")
        body, bar, default = (f"{name}:{spec}" if spec else name).partition("|")
        column, _, fmt = body.partition(":")
        if not column.strip() or column != column.strip():
            raise ConfigError(f"key template {template!r}: a placeholder without a column name")
        ph = Placeholder(column, fmt, default if bar else None)
        if fmt and ph.kind == "temporal":
            known = {*_TEMPORAL_SLICES, "f", "%"}
            unknown = sorted({d for d in _DIRECTIVE.findall(fmt) if d not in known})
            if unknown or "%" not in fmt:
                raise ConfigError(f"key template {template!r}: format {fmt!r} of {column!r} is neither 0<N>d "
                                  "(zero-padded integer) nor a date format of %Y %m %d %H %M %S %f")
        out.append((literal, ph))
    return tuple(out)


def placeholders(template: str) -> tuple[Placeholder, ...]:
    return tuple(ph for _, ph in parse_template(template) if ph is not None)


def template_fields(template: str) -> tuple[str, ...]:
    """The column names a key template refers to: ``"USER#{id}#{region}"`` -> ``("id", "region")``."""
    return tuple(ph.column for ph in placeholders(template))


def render_part(ph: Placeholder, value: Value, text: str | None) -> str | None:
    """One placeholder's text: ``text`` is the value's plain template text (None: NULL/empty).
    None when the value cannot key an item and there is no default."""
    if text is None:
        return ph.default
    if ph.kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            raise TemplateValueError(f"format {ph.format!r} of {ph.column!r} needs an integer, got {text!r}")
        width = int(_INT_FORMAT.fullmatch(ph.format).group(1))  # type: ignore[union-attr]
        if value < 0 or len(str(value)) > width:
            raise TemplateValueError(f"{ph.column}={value} does not fit {ph.format!r} in sort order "
                                     f"(non-negative, at most {width} digits)")
        return f"{value:0{width}d}"
    if ph.kind == "temporal":
        if not isinstance(value, Temporal) or value.kind == "time":
            raise TemplateValueError(f"format {ph.format!r} of {ph.column!r} needs a date or a datetime, "
                                     f"got {text!r}")
        return _strftime(ph.format, value.text)
    return text


def _strftime(fmt: str, text: str) -> str:
    """``fmt`` over MySQL's text of a DATE/DATETIME/TIMESTAMP (zero dates included)."""
    def one(m: re.Match[str]) -> str:
        d = m.group(1)
        if d == "%":
            return "%"
        if d == "f":
            frac = text[20:26] if len(text) > 19 and text[19] == "." else ""
            return frac.ljust(6, "0")
        lo, hi = _TEMPORAL_SLICES[d]
        return text[lo:hi] if len(text) >= hi else "00"
    return _DIRECTIVE.sub(one, fmt)

"""DynamoDB item size, computed the way DynamoDB bills and limits it (400 KB per item)."""

from __future__ import annotations

from typing import Any

MAX_ITEM_BYTES = 400 * 1024


def _number_size(text: str) -> int:
    digits = text.lstrip("-").split("e")[0].split("E")[0].replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1


def attribute_size(av: dict[str, Any]) -> int:
    """Bytes one attribute value takes (name excluded)."""
    ((tag, payload),) = av.items()
    if tag == "S":
        return len(payload.encode("utf-8"))
    if tag == "N":
        return _number_size(str(payload))
    if tag == "B":
        return len(payload)
    if tag in ("BOOL", "NULL"):
        return 1
    if tag == "SS":
        return sum(len(s.encode("utf-8")) for s in payload)
    if tag == "NS":
        return sum(_number_size(str(n)) for n in payload)
    if tag == "BS":
        return sum(len(b) for b in payload)
    if tag == "L":
        return 3 + sum(1 + attribute_size(x) for x in payload)
    if tag == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + attribute_size(v) for k, v in payload.items())
    raise ValueError(f"unknown attribute type {tag}")


def item_size(item: dict[str, dict[str, Any]]) -> int:
    return sum(len(name.encode("utf-8")) + attribute_size(av) for name, av in item.items())

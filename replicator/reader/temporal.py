"""Packed temporal values of a rows event -> :class:`~replicator.events.Temporal`, exactly.

The server's formats (``my_datetime_packed_to_binary`` and friends): DATE (3 bytes, little-endian),
DATETIME2 / TIMESTAMP2 / TIME2 (big-endian, offset-encoded, ``fsp`` fractional digits in 0-3
more bytes) and the pre-5.6 DATETIME / TIMESTAMP / TIME. Zero dates stay zero dates; TIMESTAMP
is UTC with a ``Z``; the text carries exactly ``fsp`` fractional digits. Pure; every decoder is
``(buf, pos) -> (value, next_pos)`` as in :mod:`.decode`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from replicator.events import Temporal, Value

__all__ = ["date", "datetime2", "old_datetime", "old_time", "old_timestamp", "time2", "time2_text",
           "timestamp2"]

_Decoder = Callable[[bytes, int], tuple[Value, int]]
_FSP_BYTES = (0, 1, 1, 2, 2, 3, 3)


def _frac_text(micro: int, fsp: int) -> str:
    return "." + f"{micro:06d}"[:fsp] if fsp else ""


def _read_frac(buf: bytes, pos: int, fsp: int) -> int:
    """The fractional part of a packed temporal, in microseconds (unsigned)."""
    n = _FSP_BYTES[fsp]
    if not n:
        return 0
    v = int.from_bytes(buf[pos:pos + n], "big")
    return v * (10_000, 100, 1)[n - 1]


def date(buf: bytes, pos: int) -> tuple[Value, int]:
    v = buf[pos] | buf[pos + 1] << 8 | buf[pos + 2] << 16
    return Temporal("date", f"{v >> 9:04d}-{(v >> 5) & 15:02d}-{v & 31:02d}"), pos + 3


def datetime2(fsp: int) -> _Decoder:
    n = 5 + _FSP_BYTES[fsp]

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        packed = int.from_bytes(buf[pos:pos + 5], "big") - 0x8000000000
        ymd, hms = packed >> 17, packed & 0x1FFFF
        ym = ymd >> 5
        text = (f"{ym // 13:04d}-{ym % 13:02d}-{ymd & 31:02d}T"
                f"{hms >> 12:02d}:{(hms >> 6) & 63:02d}:{hms & 63:02d}")
        return Temporal("datetime", text + _frac_text(_read_frac(buf, pos + 5, fsp), fsp)), pos + n

    return dec


def timestamp2(fsp: int) -> _Decoder:
    n = 4 + _FSP_BYTES[fsp]

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        secs = int.from_bytes(buf[pos:pos + 4], "big")
        micro = _read_frac(buf, pos + 4, fsp)
        if secs == 0 and micro == 0:
            text = "0000-00-00T00:00:00"
        else:
            text = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return Temporal("timestamp", text + _frac_text(micro, fsp) + "Z"), pos + n

    return dec


def time2_text(raw: bytes, fsp: int) -> str:
    """TIME2 (3 bytes + fsp bytes, big-endian, offset-encoded) to ``[-]HH:MM:SS[.f]``."""
    intpart = int.from_bytes(raw[:3], "big") - 0x800000
    n = _FSP_BYTES[fsp]
    if n == 3:
        packed = int.from_bytes(raw[:6], "big") - 0x800000000000
    else:
        frac = int.from_bytes(raw[3:3 + n], "big") if n else 0
        if intpart < 0 and frac:
            intpart += 1
            frac -= 0x100 if n == 1 else 0x10000
        packed = (intpart << 24) + frac * (10_000 if n == 1 else 100)
    sign = "-" if packed < 0 else ""
    packed = abs(packed)
    hms, micro = packed >> 24, packed & 0xFFFFFF
    text = f"{sign}{(hms >> 12) & 0x3FF:02d}:{(hms >> 6) & 63:02d}:{hms & 63:02d}"
    return text + _frac_text(micro, fsp)


def time2(fsp: int) -> _Decoder:
    n = 3 + _FSP_BYTES[fsp]

    def dec(buf: bytes, pos: int) -> tuple[Value, int]:
        return Temporal("time", time2_text(buf[pos:pos + n], fsp)), pos + n

    return dec


def old_datetime(buf: bytes, pos: int) -> tuple[Value, int]:
    v = int.from_bytes(buf[pos:pos + 8], "little")
    d, t = divmod(v, 1_000_000)
    text = (f"{d // 10000:04d}-{d // 100 % 100:02d}-{d % 100:02d}"
            f"T{t // 10000:02d}:{t // 100 % 100:02d}:{t % 100:02d}")
    return Temporal("datetime", text), pos + 8


def old_timestamp(buf: bytes, pos: int) -> tuple[Value, int]:
    secs = int.from_bytes(buf[pos:pos + 4], "little")
    text = ("0000-00-00T00:00:00" if secs == 0
            else datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return Temporal("timestamp", text + "Z"), pos + 4


def old_time(buf: bytes, pos: int) -> tuple[Value, int]:
    v = int.from_bytes(buf[pos:pos + 3], "little", signed=True)
    sign, v = ("-" if v < 0 else ""), abs(v)
    return Temporal("time", f"{sign}{v // 10000:02d}:{v // 100 % 100:02d}:{v % 100:02d}"), pos + 3

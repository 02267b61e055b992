"""Durations as sequence files write them: "90s", "60m", "1h30m", "7d", "2w", "250ms"."""

from __future__ import annotations

import re

__all__ = ["DURATION_PATTERN", "format_duration_ms", "parse_duration_ms"]

_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
DURATION_PATTERN = r"^(\d+(ms|s|m|h|d|w))+$"
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_WHOLE = re.compile(DURATION_PATTERN)


def parse_duration_ms(text: object) -> int:
    """Milliseconds in `text`; a bare number is refused because its unit would be a guess."""
    if not isinstance(text, str) or not _WHOLE.match(text.strip()):
        raise ValueError(f"invalid duration {text!r}: write a number and a unit, e.g. 30m, 2h, 7d")
    return sum(int(n) * _UNIT_MS[unit] for n, unit in _PART.findall(text.strip()))


def format_duration_ms(ms: int) -> str:
    """Text that `parse_duration_ms` reads back as `ms`, largest unit first ("1h1m")."""
    if ms == 0:
        return "0s"
    parts = []
    for unit in ("w", "d", "h", "m", "s", "ms"):
        n, ms = divmod(ms, _UNIT_MS[unit])
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)

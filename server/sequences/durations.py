"""Durations as sequence files write them: "90s", "60m", "1h30m", "7d", "2w", "250ms".

Every duration is at most MAX_DURATION_MS (ten years), checked when the file loads: the engine
and the shards add durations to millisecond times held in 64 bits, and a wait of 10^15 weeks
that loaded would overflow them later, in the running server.
"""

from __future__ import annotations

import re

__all__ = [
    "DURATION_PATTERN",
    "MAX_DURATION_CHARS",
    "MAX_DURATION_MS",
    "MAX_DURATION_TEXT",
    "format_duration_ms",
    "parse_duration_ms",
]

_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
DURATION_PATTERN = r"^(\d+(ms|s|m|h|d|w))+$"
MAX_DURATION_MS = 3650 * _UNIT_MS["d"]
MAX_DURATION_TEXT = "3650d (10 years)"
MAX_DURATION_CHARS = 64  # "1w1d1h1m1s1ms" is 13: a much longer text only hides a huge number
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_WHOLE = re.compile(DURATION_PATTERN)


def parse_duration_ms(text: object) -> int:
    """Milliseconds in `text`; a bare number is refused because its unit would be a guess."""
    if isinstance(text, str) and len(text.strip()) > MAX_DURATION_CHARS:
        raise ValueError(f"invalid duration {text.strip()[:MAX_DURATION_CHARS]!r}...: longer than "
                         f"{MAX_DURATION_CHARS} characters")
    if not isinstance(text, str) or not _WHOLE.match(text.strip()):
        shown = repr(text)
        shown = shown if len(shown) <= 40 else shown[:40] + "..."
        raise ValueError(f"invalid duration {shown}: write a number and a unit, e.g. 30m, 2h, 7d")
    ms = sum(int(n) * _UNIT_MS[unit] for n, unit in _PART.findall(text.strip()))
    if ms > MAX_DURATION_MS:
        raise ValueError(f"duration {text.strip()!r} is too long: at most {MAX_DURATION_TEXT}")
    return ms


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

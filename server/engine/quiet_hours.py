"""Quiet hours: is an instant inside a user's local quiet window, and when does it end.

The window is [start, end) in wall-clock time of the user's zone and may wrap midnight
(21:00-08:00). Around DST changes the end is taken in the zone's own rules: a wall time that
does not exist that day resolves to the instant after the gap, never to one inside the window.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.sequences.model import QuietHours

__all__ = ["quiet_until_ms"]


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


@lru_cache(maxsize=64)
def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _inside(local: time, start: time, end: time) -> bool:
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_until_ms(rule: QuietHours, user_tz: str | None, at_ms: int) -> int | None:
    """The instant quiet hours end, if `at_ms` is inside them in the user's zone; else None."""
    zone = (_zone(user_tz) if user_tz else None) or _zone(rule.timezone) or ZoneInfo("UTC")
    local = datetime.fromtimestamp(at_ms / 1000, tz=zone)
    start, end = _clock(rule.start), _clock(rule.end)
    if not _inside(local.time(), start, end):
        return None
    day = local.date()
    if start > end and local.time() >= start:
        day += timedelta(days=1)
    wall_end = datetime.combine(day, end, tzinfo=zone)
    # In a DST gap the wall time does not exist and fold=0 gives the instant after the gap; in
    # an overlap it exists twice: the first occurrence still ahead of `at_ms` is the end.
    candidates = (
        int(wall_end.replace(fold=fold).astimezone(UTC).timestamp() * 1000) for fold in (0, 1)
    )
    return min((c for c in candidates if c > at_ms), default=at_ms + 1)

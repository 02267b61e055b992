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
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory, a long name
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
    local = _local(at_ms, zone)
    start, end = _clock(rule.start), _clock(rule.end)
    if not _inside(local.time(), start, end):
        return None
    day = local.date()
    if start > end and local.time() >= start:
        day += timedelta(days=1)
    wall_end = datetime.combine(day, end, tzinfo=zone)
    # The end's wall time read with either fold: in an overlap it exists twice, and the first
    # occurrence still ahead of `at_ms` ends the window; in a DST gap it does not exist at all.
    ahead = sorted(
        c for fold in (0, 1)
        if (c := int(wall_end.replace(fold=fold).astimezone(UTC).timestamp() * 1000)) > at_ms
        and not _inside(_local(c, zone).time(), start, end)
    )
    if not ahead:
        return at_ms + 1
    if _local(ahead[0], zone).time() == end:
        return ahead[0]
    # A gap swallowed the end: the window ended at the jump, the first instant outside it.
    inside_ms, outside_ms = at_ms, ahead[0]
    while outside_ms - inside_ms > 1:
        mid = (inside_ms + outside_ms) // 2
        if _inside(_local(mid, zone).time(), start, end):
            inside_ms = mid
        else:
            outside_ms = mid
    return outside_ms


def _local(at_ms: int, zone: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, tz=zone)

"""Engaged time of one page view, heartbeat style.

How this works: time counts as engaged only while the page is visible AND focused AND the
visitor was active (input, scroll, pointer) within the last `idle_after_ms`: after each activity
up to `idle_after_ms` of time counts, then the clock stops until the next activity. Every call
first brings the count up to `now_ms` (`_advance`), then applies its change, so each interval is
judged by the state that held during it. The page view itself, and the page becoming visible
or focused again, count as activity: the visitor just did something to see it.

`engaged_ms` is cumulative for the page view, as on the wire. When it crosses a threshold
(10 s, 30 s, 60 s, 120 s, 300 s) a `Dwell` is emitted at the instant of crossing, which may be
earlier than `now_ms` if the host was not calling in between; `checkpoint` emits the current
total when it grew past what was last sent (page end, page hidden).
"""

from __future__ import annotations

from collector.events import Dwell

THRESHOLDS_MS: tuple[int, ...] = (10_000, 30_000, 60_000, 120_000, 300_000)
IDLE_AFTER_MS = 15_000


class EngagedTime:
    def __init__(
        self,
        path: str,
        now_ms: int,
        *,
        idle_after_ms: int = IDLE_AFTER_MS,
        thresholds_ms: tuple[int, ...] = THRESHOLDS_MS,
    ) -> None:
        self.path = path
        self.engaged_ms = 0
        self.visible = True
        self.focused = True
        self._idle_after_ms = idle_after_ms
        self._thresholds = tuple(sorted(thresholds_ms))
        self._last_activity_ms = now_ms
        self._counted_until_ms = now_ms
        self._sent_ms = 0

    def activity(self, now_ms: int) -> list[Dwell]:
        out = self._advance(now_ms)
        self._last_activity_ms = max(self._last_activity_ms, now_ms)
        return out

    def visibility(self, visible: bool, now_ms: int) -> list[Dwell]:
        out = self._advance(now_ms)
        self.visible = visible
        if visible:
            self._last_activity_ms = max(self._last_activity_ms, now_ms)
        return out

    def focus(self, focused: bool, now_ms: int) -> list[Dwell]:
        out = self._advance(now_ms)
        self.focused = focused
        if focused:
            self._last_activity_ms = max(self._last_activity_ms, now_ms)
        return out

    def tick(self, now_ms: int) -> list[Dwell]:
        return self._advance(now_ms)

    def checkpoint(self, now_ms: int) -> list[Dwell]:
        """The total so far, if it grew past anything sent for this page view."""
        out = self._advance(now_ms)
        if self.engaged_ms > self._sent_ms:
            self._sent_ms = self.engaged_ms
            out.append(Dwell(max(now_ms, self._counted_until_ms), self.path, self.engaged_ms))
        return out

    def _advance(self, now_ms: int) -> list[Dwell]:
        start = self._counted_until_ms
        if now_ms <= start:
            return []  # a clock that went back counts nothing
        self._counted_until_ms = now_ms
        if not (self.visible and self.focused):
            return []
        end = min(now_ms, self._last_activity_ms + self._idle_after_ms)
        if end <= start:
            return []
        before = self.engaged_ms
        self.engaged_ms = before + (end - start)
        out = []
        for t in self._thresholds:
            if before < t <= self.engaged_ms:
                out.append(Dwell(start + (t - before), self.path, t))
                self._sent_ms = t
        return out

"""Scroll depth of one page view.

How this works: the host reports the current depth (0-100 % of the scrollable height) whenever
the visitor scrolls. The tracker keeps the deepest point reached and emits one `Scroll` the
first time each threshold (25, 50, 70, 90) is reached, carrying the threshold itself, so a jump
from the top to 95 % emits four events, in threshold order. `checkpoint` emits the deepest point
when it went past what was last sent (page end, page hidden); a page view with no Scroll event
was never scrolled.
"""

from __future__ import annotations

from collector.events import Scroll

THRESHOLDS_PCT: tuple[int, ...] = (25, 50, 70, 90)


class ScrollDepth:
    def __init__(self, path: str, thresholds_pct: tuple[int, ...] = THRESHOLDS_PCT) -> None:
        self.path = path
        self.max_pct = 0
        self._thresholds = tuple(sorted(thresholds_pct))
        self._sent_pct = 0

    def scroll_to(self, depth_pct: float, now_ms: int) -> list[Scroll]:
        depth = min(100, max(0, int(depth_pct)))
        if depth <= self.max_pct:
            return []
        before, self.max_pct = self.max_pct, depth
        crossed = [t for t in self._thresholds if before < t <= depth]
        if crossed:
            self._sent_pct = crossed[-1]
        return [Scroll(now_ms, self.path, t) for t in crossed]

    def checkpoint(self, now_ms: int) -> list[Scroll]:
        """The deepest point, if deeper than anything sent for this page view."""
        if self.max_pct <= self._sent_pct:
            return []
        self._sent_pct = self.max_pct
        return [Scroll(now_ms, self.path, self.max_pct)]

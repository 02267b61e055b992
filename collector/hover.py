"""Hover intent on elements marked data-pw-hover, for one page view.

How this works: the host reports pointer enter and leave with the element's data-pw-hover
value. One rest is open at a time: entering another element closes the open one (nested marked
elements hand over to the innermost). A rest that lasted at least `min_ms` emits one `Hover`
when it closes, at the closing instant and with its full length; each element is reported at
most once per page view. `close` ends an open rest (page end, page hidden).
"""

from __future__ import annotations

from collector.events import Hover

MIN_MS = 800


class HoverIntent:
    def __init__(self, path: str, *, min_ms: int = MIN_MS) -> None:
        self.path = path
        self._min_ms = min_ms
        self._open: tuple[str, int] | None = None
        self._reported: set[str] = set()

    def pointer_enter(self, target: str, now_ms: int) -> list[Hover]:
        if self._open is not None and self._open[0] == target:
            return []
        out = self.close(now_ms)
        if target not in self._reported:
            self._open = (target, now_ms)
        return out

    def pointer_leave(self, target: str, now_ms: int) -> list[Hover]:
        if self._open is None or self._open[0] != target:
            return []
        return self.close(now_ms)

    def close(self, now_ms: int) -> list[Hover]:
        if self._open is None:
            return []
        (target, since_ms), self._open = self._open, None
        rested_ms = now_ms - since_ms
        if rested_ms < self._min_ms or target in self._reported:
            return []
        self._reported.add(target)
        return [Hover(now_ms, self.path, target, rested_ms)]

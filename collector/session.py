"""The collector a host drives: signals in, wire batches out.

How this works: the host (browser glue, edge worker, a test) calls one method per signal,
always passing its clock as `now_ms`; nothing here reads a clock or does I/O. A `page_view`
ends the page view before it (if any) and starts fresh scroll, dwell and hover trackers for the
new one. Every call first brings engaged time up to `now_ms`, so dwell thresholds crossed in
between are emitted, at their own instants, before the call's own events: events reach the
batcher in time order. Scrolls and pointer moves count as activity for dwell. When the page
is hidden, an open hover is closed and the deepest scroll and engaged time so far are sent
(mobile browsers often never fire pagehide); `page_end` does the same for good.

The host sends what `tick` returns (call it at `next_deadline_ms()` or every few seconds),
sends `flush` on page hide (fetch keepalive or beacon), calls `ack(seq)` for each batch the
server acked and `resend(now_ms)` after a failure.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from collector.batching import BatchContext, Batcher, BatchLimits
from collector.dwell import IDLE_AFTER_MS, EngagedTime
from collector.dwell import THRESHOLDS_MS as DWELL_THRESHOLDS_MS
from collector.events import Event, Identify, PageView
from collector.gen.pulsewire.v1 import batch_pb2
from collector.hover import MIN_MS, HoverIntent
from collector.retry_queue import Storage
from collector.scroll import THRESHOLDS_PCT, ScrollDepth
from collector.track import Props, tracked_event


@dataclass(frozen=True, slots=True)
class SignalSettings:
    idle_after_ms: int = IDLE_AFTER_MS
    dwell_thresholds_ms: tuple[int, ...] = DWELL_THRESHOLDS_MS
    scroll_thresholds_pct: tuple[int, ...] = THRESHOLDS_PCT
    hover_min_ms: int = MIN_MS

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> SignalSettings:
        """The settings a site's config serves as JSON (/pw/v1/config/SITE, `signals`); a key
        it leaves out keeps its default."""
        defaults = cls()
        return cls(
            idle_after_ms=int(raw.get("idle_after_ms", defaults.idle_after_ms)),
            dwell_thresholds_ms=tuple(raw.get("dwell_thresholds_ms",
                                              defaults.dwell_thresholds_ms)),
            scroll_thresholds_pct=tuple(raw.get("scroll_thresholds_pct",
                                                defaults.scroll_thresholds_pct)),
            hover_min_ms=int(raw.get("hover_min_ms", defaults.hover_min_ms)),
        )


class _Page:
    def __init__(self, path: str, now_ms: int, settings: SignalSettings) -> None:
        self.path = path
        self.scroll = ScrollDepth(path, settings.scroll_thresholds_pct)
        self.dwell = EngagedTime(
            path,
            now_ms,
            idle_after_ms=settings.idle_after_ms,
            thresholds_ms=settings.dwell_thresholds_ms,
        )
        self.hover = HoverIntent(path, min_ms=settings.hover_min_ms)

    def checkpoint(self, now_ms: int) -> list[Event]:
        return [
            *self.hover.close(now_ms),
            *self.scroll.checkpoint(now_ms),
            *self.dwell.checkpoint(now_ms),
        ]


class Collector:
    def __init__(
        self,
        site_key: str,
        device_id: str,
        *,
        stream: int = 0,
        storage: Storage | None = None,
        context: BatchContext | None = None,
        limits: BatchLimits | None = None,
        settings: SignalSettings | None = None,
        resumable: bool = False,
    ) -> None:
        self.context = context or BatchContext()
        self.settings = settings or SignalSettings()
        self.batcher = Batcher(
            site_key, device_id, stream=stream, context=self.context, storage=storage,
            limits=limits, resumable=resumable,
        )
        self._page: _Page | None = None
        self._muted = False

    @property
    def path(self) -> str:
        return self._page.path if self._page else ""

    def page_view(self, path: str, title: str, referrer: str, now_ms: int) -> None:
        self.page_end(now_ms)
        self._page = _Page(path, now_ms, self.settings)
        self._emit([PageView(now_ms, path, title, referrer)])

    def scroll_to(self, depth_pct: float, now_ms: int) -> None:
        if page := self._advanced(now_ms):
            page.dwell.activity(now_ms)
            self._emit(page.scroll.scroll_to(depth_pct, now_ms))

    def visibility(self, visible: bool, now_ms: int) -> None:
        if page := self._advanced(now_ms):
            page.dwell.visibility(visible, now_ms)
            if not visible:
                self._emit(page.checkpoint(now_ms))

    def focus(self, focused: bool, now_ms: int) -> None:
        if page := self._advanced(now_ms):
            page.dwell.focus(focused, now_ms)

    def activity(self, now_ms: int) -> None:
        if page := self._advanced(now_ms):
            page.dwell.activity(now_ms)

    def pointer_enter(self, target: str, now_ms: int) -> None:
        if page := self._advanced(now_ms):
            page.dwell.activity(now_ms)
            self._emit(page.hover.pointer_enter(target, now_ms))

    def pointer_leave(self, target: str, now_ms: int) -> None:
        if page := self._advanced(now_ms):
            page.dwell.activity(now_ms)
            self._emit(page.hover.pointer_leave(target, now_ms))

    def track(self, name: str, props: Props, now_ms: int) -> None:
        """Raises InvalidTrack when a typed event's props do not fit it."""
        event = tracked_event(name, props, now_ms, self.context.currency)
        self._advanced(now_ms)
        self._emit([event])

    def identify(
        self,
        user_id: str,
        email: str,
        signature: str,
        now_ms: int,
        traits: dict[str, str] | None = None,
    ) -> None:
        self._advanced(now_ms)
        self._emit([Identify(now_ms, user_id, email, signature, tuple((traits or {}).items()))])

    def last_words(self, now_ms: int, seq: int, *,
                   page_end: bool = True) -> batch_pb2.Batch | None:
        """What this page would still send if it ended now (the open batch and, with
        `page_end`, the open hover, the deepest scroll and engaged time), as one batch numbered
        `seq`, changing nothing: a host whose page can vanish without a moment's notice keeps it
        ready for its last beacon. (The browser host leaves the page end to the raw chunk that
        carries the page's last signals, which replays it exactly once.)"""
        page = self._advanced(now_ms)
        extra = copy.deepcopy(page).checkpoint(now_ms) if page and page_end else []
        return self.batcher.sealed_apart(extra, self.path, seq, now_ms)

    def page_end(self, now_ms: int) -> None:
        if page := self._advanced(now_ms):
            self._emit(page.checkpoint(now_ms))
            self._page = None

    def tick(self, now_ms: int) -> list[batch_pb2.Batch]:
        """The batches due now."""
        self._advanced(now_ms)
        return self.batcher.tick(now_ms)

    def flush(self, now_ms: int) -> list[batch_pb2.Batch]:
        """Every unacked batch, the buffered events sealed into a last one (page hide)."""
        self._advanced(now_ms)
        return self.batcher.flush(now_ms)

    def resend(self, now_ms: int) -> list[batch_pb2.Batch]:
        """Every unacked batch again, for a retry after a failed send."""
        return self.batcher.resend(now_ms)

    def ack(self, seq: int, stream: int | None = None) -> bool:
        """Forget an acked batch; `stream` names another page load's batch that this one resent."""
        return self.batcher.ack(seq, stream)

    def acked(self, ack: batch_pb2.Ack) -> bool:
        """Forget the batch `ack` answers, learning what the server keeps of the stream."""
        return self.batcher.ack(ack.seq, ack.stream, resume=ack.resume,
                                strings_kept=ack.strings_kept)

    def forget_resume(self) -> None:
        """The server refused a resumed batch (FAILED_PRECONDITION): send in full again."""
        if self.batcher.resume is not None:
            self.batcher.resume.forget()

    def pending(self) -> list[batch_pb2.Batch]:
        return self.batcher.pending()

    def next_deadline_ms(self) -> int | None:
        return self.batcher.next_deadline_ms()

    def _advanced(self, now_ms: int) -> _Page | None:
        """The current page view with its engaged time brought up to `now_ms`."""
        if self._page is not None:
            self._emit(self._page.dwell.tick(now_ms))
        return self._page

    @contextmanager
    def muted(self) -> Iterator[None]:
        """Signals fed inside rebuild the page's state (scroll, dwell, hover) and emit nothing:
        a raw chunk's history, whose events went out with the chunks before it."""
        self._muted = True
        try:
            yield
        finally:
            self._muted = False

    def advance_to(self, now_ms: int) -> None:
        """Count engaged time up to `now_ms` (a host's clock between signals)."""
        self._advanced(now_ms)

    def _emit(self, events: Iterable[Event]) -> None:
        if self._muted:
            return
        for event in events:
            self.batcher.add(event, self.path)

"""Raw payloads in, batches out: what an edge worker (and the server's raw endpoint) runs.

How this works: every page load that sends raw signals (`collector/raw_signals.py`) gets its
own `Collector`, numbered by the page load's stream, kept here between its chunks and dropped
after `idle_ms` without one (or, least recent first, past `max_loads`). A chunk is checked
whole against a throwaway collector before it touches the page load's own, so a malformed
chunk changes nothing; a chunk number already seen is a resend and is ignored. After a chunk,
`accept` returns every unacked batch of that page load (`flush`): the host forwards them to
the server and calls `ack` for those the server acked, so a batch the server did not take
goes again with the next chunk, under the same seq. A page load whose state was lost (a
restarted worker) numbers its batches from the chunk's `first_seq`, never reusing a seq.

Bot filtering: requests whose user agent names a crawler, a headless browser or an HTTP
library are dropped before any replay and counted by reason (`dropped`). Enrichment: the device
class comes from the user agent, the locale from Accept-Language when the page gave none.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from collector.batching import BatchContext, BatchLimits, DeviceClass
from collector.gen.pulsewire.v1 import batch_pb2
from collector.raw_signals import RawPayload, replay
from collector.session import Collector, SignalSettings

__all__ = ["EDGE_COLLECTOR_NAME", "EdgeSettings", "PageLoads", "bot_reason", "device_class"]

EDGE_COLLECTOR_NAME = "python-edge/0.1.0"

_BOTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("empty user agent", re.compile(r"^\s*$")),
    ("headless browser", re.compile(r"HeadlessChrome|PhantomJS|Electron/|puppeteer|playwright",
                                    re.I)),
    ("crawler", re.compile(r"bot\b|bot/|crawl|spider|slurp|facebookexternalhit|embedly|"
                           r"lighthouse|pingdom|uptime|preview", re.I)),
    ("http library", re.compile(r"^(curl|wget|python-requests|python-httpx|python-urllib|"
                                r"go-http-client|java/|okhttp|node-fetch|axios|undici)", re.I)),
)


def bot_reason(user_agent: str) -> str | None:
    """Why a request with this user agent is not a person's, or None."""
    for reason, pattern in _BOTS:
        if pattern.search(user_agent):
            return reason
    return None


def device_class(user_agent: str) -> DeviceClass:
    if re.search(r"iPad|Tablet|Android(?!.*Mobile)", user_agent):
        return "tablet"
    if re.search(r"Mobi|iPhone|Android", user_agent):
        return "mobile"
    return "desktop"


def _locale(accept_language: str) -> str:
    first = accept_language.split(",")[0].split(";")[0].strip()
    return first if re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*", first) else ""


@dataclass(frozen=True, slots=True)
class EdgeSettings:
    signals: SignalSettings = field(default_factory=SignalSettings)
    limits: BatchLimits = field(default_factory=BatchLimits)
    idle_ms: int = 30 * 60_000
    max_loads: int = 10_000
    collector_name: str = EDGE_COLLECTOR_NAME


@dataclass(slots=True)
class _Load:
    collector: Collector
    next_chunk: int
    seen_ms: int


def _context(payload: RawPayload, user_agent: str, accept_language: str,
             name: str) -> BatchContext:
    ctx = payload.context

    def text(key: str, limit: int) -> str:
        value = ctx.get(key, "")
        return value[:limit] if isinstance(value, str) else ""

    def size(key: str) -> int:
        value = ctx.get(key, 0)
        return min(max(int(value), 0), 100_000) if isinstance(value, (int, float)) else 0

    return BatchContext(
        timezone=text("tz", 64),
        locale=text("locale", 35) or _locale(accept_language),
        viewport_width=size("vw"),
        viewport_height=size("vh"),
        device_class=device_class(user_agent),
        currency=text("cur", 3).upper(),
        collector=name,
    )


class PageLoads:
    """The collectors of the page loads in flight, fed by their raw payloads."""

    def __init__(self, settings: EdgeSettings | None = None) -> None:
        self.settings = settings or EdgeSettings()
        self.dropped: Counter[str] = Counter()
        self.resent_chunks = 0
        self._loads: OrderedDict[tuple[str, str, int], _Load] = OrderedDict()

    def __len__(self) -> int:
        return len(self._loads)

    def accept(self, payload: RawPayload, *, user_agent: str, now_ms: int,
               accept_language: str = "") -> list[batch_pb2.Batch]:
        """The batches to forward after this chunk (none for a bot or a resent chunk).

        Raises InvalidSignals, naming the signal at fault, and then changes nothing."""
        self._expire(now_ms)
        if reason := bot_reason(user_agent):
            self.dropped[reason] += 1
            return []
        context = _context(payload, user_agent, accept_language, self.settings.collector_name)
        replay(self._collector(payload, context), payload)  # all or nothing: check first
        key = (payload.site, payload.device, payload.load)
        load = self._loads.get(key)
        if load is None:
            load = _Load(self._collector(payload, context), payload.chunk, now_ms)
            load.collector.batcher.queue.skip_to(payload.first_seq)
            self._loads[key] = load
        elif payload.chunk < load.next_chunk:
            self.resent_chunks += 1
            return load.collector.resend(payload.sent_ms)
        self._loads.move_to_end(key)
        load.seen_ms = now_ms
        load.next_chunk = payload.chunk + 1
        replay(load.collector, payload)
        return load.collector.flush(payload.sent_ms)

    def ack(self, ack: batch_pb2.Ack, site: str) -> None:
        """Forget a batch the server acked (or refused for good)."""
        load = self._loads.get((site, ack.device_id, ack.stream))
        if load is not None:
            load.collector.ack(ack.seq)

    def _collector(self, payload: RawPayload, context: BatchContext) -> Collector:
        return Collector(payload.site, payload.device, stream=payload.load, context=context,
                         limits=self.settings.limits, settings=self.settings.signals)

    def _expire(self, now_ms: int) -> None:
        while self._loads:
            key, oldest = next(iter(self._loads.items()))
            if (len(self._loads) <= self.settings.max_loads
                    and now_ms - oldest.seen_ms < self.settings.idle_ms):
                break
            del self._loads[key]

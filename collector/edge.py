"""Raw payloads in, batches out: what an edge worker (and the server's raw endpoint) runs.

How this works: a raw chunk (`collector/raw_signals.py`) carries its page view's history, so it
is turned into batches on its own: a fresh `Collector` replays the history muted, then the
chunk's signals, and seals what they emitted into batches numbered from the chunk's
`first_seq`. The same chunk always makes the same batches, so chunks can come in any order, any
number of times, to a host that never saw the page load before (a restart, another node): each
signal is applied once, by the server's dedup of (device, stream, seq). A malformed chunk
raises InvalidSignals before anything changes.

What is kept per page load (dropped after `idle_ms` without a chunk, or least recent first past
`max_loads`) is only bookkeeping: which chunks were applied, chunks held back, and batches not
acked yet. A chunk whose predecessor has not arrived is held for up to `hold_ms`, so a page's
signals reach the engine in the page's own order when the browser delivers two beacons the
wrong way round; `due` releases what waited long enough (a predecessor that was applied
elsewhere, or lost). After a chunk is applied, `accept` returns every unacked batch of its page
load: the host forwards them and calls `ack` for those the server acked, so a batch the server
did not take goes again with the next chunk, under the same seq.

Bot filtering: requests whose user agent names a crawler, a headless browser or an HTTP
library are dropped before any replay and counted by reason (`dropped`). Enrichment: the device
class comes from the user agent, the locale from Accept-Language when the page gave none.
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Literal

from collector.batching import BatchContext, BatchLimits, DeviceClass
from collector.gen.pulsewire.v1 import batch_pb2
from collector.raw_signals import RawPayload, rebuild, replay
from collector.session import Collector, SignalSettings

__all__ = [
    "EDGE_COLLECTOR_NAME",
    "ChunkOutcome",
    "EdgeSettings",
    "PageLoads",
    "Taken",
    "bot_reason",
    "device_class",
]

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
    hold_ms: int = 2_000
    collector_name: str = EDGE_COLLECTOR_NAME


# applied: its batches are out; held: waiting for the chunk before it; duplicate: seen before
# (the load's unacked batches go again); bot: dropped by user agent, see `reason`.
ChunkOutcome = Literal["applied", "held", "duplicate", "bot"]


@dataclass(frozen=True, slots=True)
class Taken:
    """What became of a chunk, and the batches to forward now."""

    outcome: ChunkOutcome
    batches: list[batch_pb2.Batch]
    reason: str = ""


@dataclass(slots=True)
class _Load:
    seen_ms: int
    applied: set[int] = field(default_factory=set)
    held: dict[int, tuple[int, list[batch_pb2.Batch]]] = field(default_factory=dict)  # until
    unacked: dict[int, batch_pb2.Batch] = field(default_factory=dict)  # by seq

    def apply(self, chunk: int, batches: list[batch_pb2.Batch]) -> None:
        """Apply `chunk`, then each held chunk that was waiting for it."""
        while True:
            self.applied.add(chunk)
            self.unacked.update((b.seq, b) for b in batches)
            chunk += 1
            if chunk not in self.held:
                return
            _, batches = self.held.pop(chunk)


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
    """The page loads in flight: their raw chunks in, batches out."""

    def __init__(self, settings: EdgeSettings | None = None) -> None:
        self.settings = settings or EdgeSettings()
        self.dropped: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.expired_unacked = 0  # batches of page loads forgotten before the server took them
        self._loads: OrderedDict[tuple[str, str, int], _Load] = OrderedDict()

    def __len__(self) -> int:
        return len(self._loads)

    @property
    def resent_chunks(self) -> int:
        return self.outcomes["duplicate"]

    def accept(self, payload: RawPayload, *, user_agent: str, now_ms: int,
               accept_language: str = "") -> Taken:
        """Take one chunk. Raises InvalidSignals, naming the signal at fault, and then changes
        nothing."""
        self._expire(now_ms)
        if reason := bot_reason(user_agent):
            self.dropped[reason] += 1
            return self._taken(Taken("bot", [], reason))
        key = (payload.site, payload.device, payload.load)
        load = self._loads.get(key)
        if load is not None and (payload.chunk in load.applied or payload.chunk in load.held):
            return self._taken(Taken("duplicate", self._unacked(load)))
        batches = self._batches(payload, _context(payload, user_agent, accept_language,
                                                   self.settings.collector_name))
        if load is None:
            load = self._loads[key] = _Load(now_ms)
        self._loads.move_to_end(key)
        load.seen_ms = now_ms
        if (payload.chunk > payload.first_chunk and payload.chunk - 1 not in load.applied
                and self.settings.hold_ms > 0):
            load.held[payload.chunk] = (now_ms + self.settings.hold_ms, batches)
            return self._taken(Taken("held", []))
        load.apply(payload.chunk, batches)
        return self._taken(Taken("applied", self._unacked(load)))

    def due(self, now_ms: int) -> list[batch_pb2.Batch]:
        """The batches of held chunks that waited `hold_ms` (their predecessor went elsewhere,
        or was lost), applied now in chunk order."""
        out: list[batch_pb2.Batch] = []
        for load in self._loads.values():
            ready = sorted(c for c, (until, _) in load.held.items() if until <= now_ms)
            for chunk in ready:
                if chunk in load.held:  # not released by an earlier one of `ready`
                    load.apply(chunk, load.held.pop(chunk)[1])
                    self.outcomes["released"] += 1
            if ready:
                out.extend(self._unacked(load))
        return out

    def next_deadline_ms(self) -> int | None:
        """When `due` next has something to release; None when nothing is held."""
        return min((until for load in self._loads.values()
                    for until, _ in load.held.values()), default=None)

    def ack(self, ack: batch_pb2.Ack, site: str) -> None:
        """Forget a batch the server acked (or refused for good)."""
        load = self._loads.get((site, ack.device_id, ack.stream))
        if load is not None:
            load.unacked.pop(ack.seq, None)

    def _batches(self, payload: RawPayload, context: BatchContext) -> list[batch_pb2.Batch]:
        collector = Collector(payload.site, payload.device, stream=payload.load, context=context,
                              limits=self.settings.limits, settings=self.settings.signals)
        collector.batcher.queue.skip_to(payload.first_seq)
        rebuild(collector, payload)
        replay(collector, payload)
        return collector.flush(payload.sent_ms)

    def _unacked(self, load: _Load) -> list[batch_pb2.Batch]:
        return [load.unacked[seq] for seq in sorted(load.unacked)]

    def _taken(self, taken: Taken) -> Taken:
        self.outcomes[taken.outcome] += 1
        return taken

    def _expire(self, now_ms: int) -> None:
        while self._loads:
            key, oldest = next(iter(self._loads.items()))
            if (len(self._loads) <= self.settings.max_loads
                    and now_ms - oldest.seen_ms < self.settings.idle_ms):
                break
            del self._loads[key]
            self.expired_unacked += len(oldest.unacked)
            self.outcomes["expired_held"] += len(oldest.held)

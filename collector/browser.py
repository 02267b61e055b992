"""The browser host: the collector in a Web Worker under Pyodide, fed by the page's loader.

How this works: the loader (`sdk_js/pw.js`) records raw signals on the page, and its boot module
(`sdk_js/boot.mjs`) posts them here as they happen; `receive` replays them into a `Collector`
numbered by the page load's stream, exactly as the edge and the server replay raw signals, and
answers how many it took in. Running in a worker keeps Pyodide off the page's thread: its boot
alone is a multi-second task there, long enough to freeze the page and to miss the visitor's
input.

Sending: batches go as unary gRPC-Web calls (`fetch`), one per batch; an ack removes the batch
from the retry queue, a refusal that will never pass (INVALID_ARGUMENT) drops it, anything else
is retried with backoff under the same seq. Batches are resumable (collector/resume.py): after
the first ack they leave out what the server keeps of the page load; a server that no longer
holds it (FAILED_PRECONDITION) gets them again in full at once. The queue's saved text is
mirrored to the page, which keeps it in localStorage (a worker has none). A closing tab gives a
worker no time at all, so after every message and every tick the page is also given the host's
last words: one batch, numbered LAST_WORDS_SEQ, holding the open batch (see
`Collector.last_words`; the page's end itself is left to the loader's raw chunk, below). When
the page goes away it beacons the queue and the last words, and hands the page back to the
loader, which sends the signals the worker had not taken in raw as chunk 1, with the history of
those it had and how far engaged time was counted here (`_report`), so the server's replay of
that chunk continues exactly where this collector stopped (its batches are numbered from
1 << 16, above anything here). A page driven by
automation that says so (`navigator.webdriver`) is a bot.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from js import Date, Object, Uint8Array, fetch, setInterval
from pyodide.ffi import create_proxy, to_js

from collector.batching import BatchContext, BatchLimits, DeviceClass
from collector.edge import device_class
from collector.gen.pulsewire.v1 import batch_pb2
from collector.grpc_web import TRAILER_FLAG, frame, split_frames
from collector.raw_signals import RawPayload, replay
from collector.session import Collector, SignalSettings

__all__ = ["BROWSER_COLLECTOR_NAME", "LAST_WORDS_SEQ", "WorkerHost", "start"]

BROWSER_COLLECTOR_NAME = "pyodide-browser/0.1.0"
SEND_PATH = "/pulsewire.v1.Ingest/Send"
TICK_MS = 250
LAST_WORDS_SEQ = 65_535  # one page load sends last words once: at its end
BACKOFF_FIRST_MS = 1_000
BACKOFF_MAX_MS = 30_000
_INVALID_ARGUMENT = 3
_FAILED_PRECONDITION = 9


def _now() -> int:
    return int(Date.now())


def _js(value: Any) -> Any:
    return to_js(value, dict_converter=Object.fromEntries)


def _bytes_to_js(data: bytes) -> Any:
    array = Uint8Array.new(len(data))
    array.assign(data)
    return array


class MirroredStorage:
    """The collector's storage (the retry queue, the resume state): what the page had saved
    under each name, and every save posted back to it under that name."""

    def __init__(self, keys: dict[str, str], saved: dict[str, str],
                 post: Callable[[Any], None]) -> None:
        """`keys`: storage key -> the name the page knows it by ("queue", "resume")."""
        self._names = keys
        self._values = {key: saved.get(name, "") for key, name in keys.items()}
        self._post = post

    def get(self, key: str) -> str | None:
        return self._values.get(key)

    def set(self, key: str, value: str) -> None:
        self._values[key] = value
        if key in self._names:
            self._post(_js({self._names[key]: value}))


class WorkerHost:
    def __init__(self, init: dict[str, Any], config: dict[str, Any],
                 post: Callable[[Any], None]) -> None:
        self.base = str(init["base"])
        self.sent = self.acked = self.dropped = 0
        self._post = post
        self._retry_at = 0
        self._backoff_ms = BACKOFF_FIRST_MS
        self._in_flight: set[tuple[int, int]] = set()
        self._tasks: set[asyncio.Future[None]] = set()
        device = str(init["device"])
        ctx = dict(init.get("ctx") or {})
        storage = MirroredStorage(
            {f"pulsewire.{device}.queue": "queue", f"pulsewire.{device}.resume": "resume"},
            {name: str(init.get(name) or "") for name in ("queue", "resume")}, post)
        self.collector = Collector(
            str(init["site"]), device, stream=int(init["load"]), storage=storage,
            context=_context(init, ctx),
            limits=BatchLimits(max_age_ms=int(config.get("batch_max_age_ms", 5_000))),
            settings=SignalSettings.from_config(config.get("signals", {})), resumable=True)
        self._payload = RawPayload(str(init["site"]), device, int(init["load"]),
                                   int(init["t0"]), 0, ctx, [], 0)
        self._counted_ms = self._payload.t0
        self._tick_proxy = create_proxy(self._tick)
        setInterval(self._tick_proxy, TICK_MS)
        now = _now()
        self._send(self.collector.resend(now), now)  # what earlier page loads left unacked

    def receive(self, message: Any) -> None:
        """Signals from the page: replay them and send what is due; the page being hidden
        seals the open batch at once. (Commands wait for the batch's age like the rest: the
        server times its waits from the event's own time, so sending sooner would change no
        email, only cost a batch.)"""
        data = message.to_py() if hasattr(message, "to_py") else dict(message)
        signals = data.get("s") or []
        replay(self.collector, dataclasses.replace(self._payload, signals=signals))
        # The collector's clock goes no further than the signals: messages queued behind this
        # one (the backlog at boot) carry earlier times, and time counted past them is final.
        at = max((self._payload.t0 + int(s[0]) for s in signals), default=_now())
        if any(s[1] == "v" and not s[2] for s in signals):
            self._send(self.collector.flush(at), at)
        else:
            self._send(self.collector.tick(at), at)
        self._report(len(signals), at)

    def _report(self, taken: int, at: int) -> None:
        """Tell the page how many more signals were taken in, how far engaged time was counted
        (ms since t0: the history of the page's raw chunk 1 counts that far), and the current
        last words: the open batch, while the page's end is left to that raw chunk."""
        self._counted_ms = max(self._counted_ms, at)
        last = self.collector.last_words(at, LAST_WORDS_SEQ, page_end=False)
        words = _bytes_to_js(last.SerializeToString()) if last is not None else None
        self._post(_js({"taken": taken, "at": self._counted_ms - self._payload.t0,
                        "last": words}))

    def _tick(self) -> None:
        now = _now()
        batches = self.collector.tick(now)
        if self._retry_at and now >= self._retry_at:
            self._retry_at = 0
            batches = self.collector.resend(now)
        self._send(batches, now)
        self._report(0, now)

    def _send(self, batches: list[batch_pb2.Batch], handed_ms: int) -> None:
        """Send batches handed out as of `handed_ms` (their age counts from then)."""
        for batch in batches:
            key = (self.collector.batcher.queued_stream(batch), batch.seq)
            if key not in self._in_flight:
                self._in_flight.add(key)
                task = asyncio.ensure_future(self._send_one(batch, key, handed_ms))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _send_one(self, batch: batch_pb2.Batch, key: tuple[int, int],
                        handed_ms: int) -> None:
        self.sent += 1
        self.collector.batcher.restamp(batch, handed_ms, _now())  # its age as it leaves
        try:
            body = frame(batch.SerializeToString())
            response = await fetch(self.base + SEND_PATH, _js({
                "method": "POST", "body": _bytes_to_js(body), "keepalive": len(body) < 60_000,
                "headers": {"content-type": "application/grpc-web+proto", "x-grpc-web": "1"}}))
            status = response.headers.get("grpc-status")
            answer = (await response.arrayBuffer()).to_bytes()
            data = [m for flags, m in split_frames(answer) if not flags & TRAILER_FLAG]
            if not status and data:
                self.collector.acked(batch_pb2.Ack.FromString(data[0]))
                self.acked += 1
                self._backoff_ms = BACKOFF_FIRST_MS
            elif status and int(status) == _INVALID_ARGUMENT:
                self.collector.ack(key[1], key[0])  # it will never pass
                self.dropped += 1
            elif status and int(status) == _FAILED_PRECONDITION and batch.resume:
                self.collector.forget_resume()  # the server lost the page load: in full, now
                self._retry_at = _now()
            else:
                self._failed()
        except Exception:  # offline, server down: the batch stays queued
            self._failed()
        finally:
            self._in_flight.discard(key)

    def _failed(self) -> None:
        self._retry_at = _now() + self._backoff_ms
        self._backoff_ms = min(self._backoff_ms * 2, BACKOFF_MAX_MS)


def _context(init: dict[str, Any], ctx: dict[str, Any]) -> BatchContext:
    kind: DeviceClass = "bot" if init.get("webdriver") else device_class(str(init["agent"]))
    return BatchContext(timezone=str(ctx.get("tz", ""))[:64],
                        locale=str(ctx.get("locale", ""))[:35],
                        viewport_width=int(init.get("vw", 0)),
                        viewport_height=int(init.get("vh", 0)), device_class=kind,
                        currency=str(ctx.get("cur", "")).upper()[:3],
                        collector=BROWSER_COLLECTOR_NAME)


def start(init: Any, config: Any, post: Callable[[Any], None]) -> WorkerHost:
    """The worker's host, from the page's init message and the site's collector config."""
    def plain(value: Any) -> dict[str, Any]:
        return dict(value.to_py() if hasattr(value, "to_py") else value or {})
    return WorkerHost(plain(init), plain(config), post)

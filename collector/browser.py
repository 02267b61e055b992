"""The browser host: the collector running in the page under Pyodide.

How this works: `sdk_js/boot.mjs` boots Pyodide in idle time and calls `start(handoff, config)`.
`handoff.take()` ends the loader's role and returns the raw signals it recorded since the page
opened (or None when the page load already went raw, by beacon, before boot: then the loader
keeps the page and this host does nothing). Those signals are replayed into a `Collector`
numbered by the page load's stream, exactly as the edge and the server would replay them; from
then on this host listens to the DOM itself through pyodide.ffi proxies: scroll (passive,
sampled once per animation frame), visibility, focus, pointer activity, hover over
`data-pw-hover` elements, pagehide; and `pw(...)` calls reach `command`.

Sending: batches go as unary gRPC-Web calls (`fetch`), one per batch; an ack removes the batch
from the retry queue (kept in localStorage), a refusal that will never pass (INVALID_ARGUMENT)
drops it, anything else is retried with backoff under the same seq. When the page is hidden or
closed, everything unacked goes in one beacon (gRPC-Web frames as text/plain, no preflight);
what the beacon delivered is acked when the next page load resends it. Batches that earlier
page loads of this device left unacked are resent at start, under their own stream and seq.
A page driven by automation that says so (`navigator.webdriver`) is marked as a bot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import struct
from typing import Any

from js import Blob, Date, Object, Uint8Array, document, fetch, navigator, window
from pyodide.ffi import create_proxy, jsnull, to_js

from collector.batching import BatchContext, BatchLimits, DeviceClass
from collector.edge import device_class
from collector.gen.pulsewire.v1 import batch_pb2
from collector.raw_signals import RawPayload, replay
from collector.session import Collector, SignalSettings

__all__ = ["BROWSER_COLLECTOR_NAME", "start"]

BROWSER_COLLECTOR_NAME = "pyodide-browser/0.1.0"
SEND_PATH = "/pulsewire.v1.Ingest/Send"
BEACON_PATH = "/pw/v1/beacon"
BEACON_MAX_BYTES = 64 * 1024
ACTIVITY_EVERY_MS = 250
TICK_MS = 1_000
BACKOFF_FIRST_MS = 1_000
BACKOFF_MAX_MS = 30_000
_INVALID_ARGUMENT = 3
_HOVER = "[data-pw-hover]"


def _now() -> int:
    return int(Date.now())


def _frame(message: bytes) -> bytes:
    return struct.pack(">BI", 0, len(message)) + message


def _py(value: Any) -> Any:
    """JavaScript's null and undefined as None (Pyodide keeps null as `jsnull`)."""
    return None if value is None or value is jsnull else value


def _options(**values: Any) -> Any:
    return to_js(values, dict_converter=Object.fromEntries)


def _bytes_to_js(data: bytes) -> Any:
    array = Uint8Array.new(len(data))
    array.assign(data)
    return array


def _signal_settings(raw: dict[str, Any]) -> SignalSettings:
    defaults = SignalSettings()
    return SignalSettings(
        idle_after_ms=int(raw.get("idle_after_ms", defaults.idle_after_ms)),
        dwell_thresholds_ms=tuple(raw.get("dwell_thresholds_ms", defaults.dwell_thresholds_ms)),
        scroll_thresholds_pct=tuple(raw.get("scroll_thresholds_pct",
                                            defaults.scroll_thresholds_pct)),
        hover_min_ms=int(raw.get("hover_min_ms", defaults.hover_min_ms)),
    )


class LocalStorage:
    """The retry queue's storage: window.localStorage (which may throw; the queue copes)."""

    def get(self, key: str) -> str | None:
        value = _py(window.localStorage.getItem(key))
        return None if value is None else str(value)

    def set(self, key: str, value: str) -> None:
        window.localStorage.setItem(key, value)


class BrowserHost:
    def __init__(self, handoff: Any, config: dict[str, Any]) -> None:
        self.base = str(handoff.base)
        self.sent = self.acked = self.dropped = 0
        self._retry_at = 0
        self._backoff_ms = BACKOFF_FIRST_MS
        self._in_flight: set[tuple[int, int]] = set()
        self._tasks: set[asyncio.Future[None]] = set()
        self._hovered: Any = None
        self._last_activity = 0
        self._frame_pending = False
        self._proxies: list[Any] = []
        self._frame_proxy = create_proxy(self._on_frame)
        self._url = str(window.location.href)
        ctx = _py(handoff.ctx)
        ctx = ctx.to_py() if ctx is not None else {}
        self.collector = Collector(
            str(handoff.site), str(handoff.device), stream=int(handoff.load),
            storage=LocalStorage(), context=self._context(ctx),
            limits=BatchLimits(max_age_ms=int(config.get("batch_max_age_ms", 5_000))),
            settings=_signal_settings(config.get("signals", {})))
        self._payload = RawPayload(str(handoff.site), str(handoff.device), int(handoff.load),
                                   int(handoff.t0), 0, ctx, [], 0)

    @staticmethod
    def _context(ctx: dict[str, Any]) -> BatchContext:
        agent = str(navigator.userAgent)
        kind: DeviceClass = "bot" if navigator.webdriver else device_class(agent)
        return BatchContext(timezone=str(ctx.get("tz", "")), locale=str(ctx.get("locale", "")),
                            viewport_width=int(window.innerWidth),
                            viewport_height=int(window.innerHeight), device_class=kind,
                            currency=str(ctx.get("cur", "")).upper()[:3],
                            collector=BROWSER_COLLECTOR_NAME)

    def take_over(self, signals: list[list[Any]]) -> None:
        replay(self.collector, dataclasses.replace(self._payload, signals=signals))
        self._listen(window, "scroll", self._on_scroll)
        self._listen(document, "visibilitychange", self._on_visibility)
        self._listen(window, "focus", lambda _e: self.collector.focus(True, _now()))
        self._listen(window, "blur", lambda _e: self.collector.focus(False, _now()))
        for kind in ("pointermove", "pointerdown", "keydown", "touchstart", "wheel"):
            self._listen(window, kind, self._on_activity)
        self._listen(document, "pointerover", self._on_pointer_over)
        self._listen(document, "pointerout", self._on_pointer_out)
        self._listen(window, "pagehide", self._on_pagehide)
        self._tick_proxy = create_proxy(self._tick)
        window.setInterval(self._tick_proxy, TICK_MS)
        self._send(self.collector.resend(_now()))  # what earlier page loads left unacked

    def command(self, args: Any) -> None:
        """A `pw(...)` call: ('track', name, props), ('identify', {...}) or ('page',)."""
        call = args.to_py() if hasattr(args, "to_py") else list(args)
        now = _now()
        if call and call[0] == "track" and len(call) > 1:
            self.collector.track(str(call[1]), call[2] if len(call) > 2 else {}, now)
        elif call and call[0] == "identify" and len(call) > 1:
            who = call[1]
            self.collector.identify(str(who.get("user_id", "")), str(who.get("email", "")),
                                    str(who.get("signature", "")), now,
                                    {str(k): str(v) for k, v in who.get("traits", {}).items()})
        elif call and call[0] == "page":
            self.collector.page_view(str(window.location.pathname), str(document.title),
                                     self._url, now)
            self._url = str(window.location.href)
        self._send(self.collector.tick(now))

    def _listen(self, target: Any, kind: str, handler: Any) -> None:
        proxy = create_proxy(handler)
        self._proxies.append(proxy)
        target.addEventListener(kind, proxy, _options(passive=True))

    def _on_scroll(self, _event: Any) -> None:
        if not self._frame_pending:
            self._frame_pending = True
            window.requestAnimationFrame(self._frame_proxy)

    def _on_frame(self, _time: Any) -> None:
        self._frame_pending = False
        height = int(document.documentElement.scrollHeight) or 1
        depth = (float(window.scrollY) + float(window.innerHeight)) * 100 / height
        self.collector.scroll_to(min(100.0, max(0.0, depth)), _now())

    def _on_visibility(self, _event: Any) -> None:
        visible = str(document.visibilityState) == "visible"
        self.collector.visibility(visible, _now())
        if not visible:
            self._beacon()

    def _on_activity(self, _event: Any) -> None:
        now = _now()
        if now - self._last_activity >= ACTIVITY_EVERY_MS:
            self._last_activity = now
            self.collector.activity(now)

    def _on_pointer_over(self, event: Any) -> None:
        target = _py(event.target)
        element = _py(target.closest(_HOVER)) if hasattr(target, "closest") else None
        if element is None or element == self._hovered:
            return
        now = _now()
        if self._hovered is not None:
            self.collector.pointer_leave(str(self._hovered.getAttribute("data-pw-hover")), now)
        self._hovered = element
        self.collector.pointer_enter(str(element.getAttribute("data-pw-hover")), now)

    def _on_pointer_out(self, event: Any) -> None:
        if self._hovered is None:
            return
        to = _py(event.relatedTarget)
        if to is not None and self._hovered.contains(to):
            return
        self.collector.pointer_leave(str(self._hovered.getAttribute("data-pw-hover")), _now())
        self._hovered = None

    def _on_pagehide(self, _event: Any) -> None:
        self.collector.page_end(_now())
        self._beacon()

    def _tick(self) -> None:
        now = _now()
        batches = self.collector.tick(now)
        if self._retry_at and now >= self._retry_at:
            self._retry_at = 0
            batches = self.collector.resend(now)
        self._send(batches)

    def _send(self, batches: list[batch_pb2.Batch]) -> None:
        for batch in batches:
            key = (batch.stream, batch.seq)
            if key not in self._in_flight:
                self._in_flight.add(key)
                task = asyncio.ensure_future(self._send_one(batch, key))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _send_one(self, batch: batch_pb2.Batch, key: tuple[int, int]) -> None:
        self.sent += 1
        try:
            response = await fetch(self.base + SEND_PATH, _options(
                method="POST", body=_bytes_to_js(_frame(batch.SerializeToString())),
                headers=_options(**{"content-type": "application/grpc-web+proto",
                                    "x-grpc-web": "1"})))
            status = _py(response.headers.get("grpc-status"))
            body = (await response.arrayBuffer()).to_bytes()
            if status is None and len(body) > 5:
                status = "0"
                ack = batch_pb2.Ack.FromString(body[5:5 + struct.unpack(">I", body[1:5])[0]])
                self.collector.ack(ack.seq, ack.stream)
                self.acked += 1
                self._backoff_ms = BACKOFF_FIRST_MS
            elif status is not None and int(status) == _INVALID_ARGUMENT:
                self.collector.ack(batch.seq, batch.stream)  # it will never pass
                self.dropped += 1
            else:
                self._failed()
        except Exception:  # offline, server down: the batch stays queued
            self._failed()
        finally:
            self._in_flight.discard(key)

    def _failed(self) -> None:
        self._retry_at = _now() + self._backoff_ms
        self._backoff_ms = min(self._backoff_ms * 2, BACKOFF_MAX_MS)

    def _beacon(self) -> None:
        body = bytearray()
        for batch in self.collector.flush(_now()):
            frame = _frame(batch.SerializeToString())
            if len(body) + len(frame) > BEACON_MAX_BYTES:
                break  # the rest stays queued for the next page load
            body += frame
        if body:
            blob = Blob.new(to_js([_bytes_to_js(bytes(body))]), _options(type="text/plain"))
            navigator.sendBeacon(self.base + BEACON_PATH, blob)


def start(handoff: Any, config: Any) -> BrowserHost | None:
    """Take the page over from the loader; None when the page load already went raw."""
    settings = config.to_py() if hasattr(config, "to_py") else dict(config or {})
    host = BrowserHost(handoff, settings)
    signals = _py(handoff.take())
    if signals is None:
        return None
    handoff.sink = create_proxy(host.command)
    host.take_over(signals.to_py())
    return host

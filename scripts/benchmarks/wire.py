"""Bytes on the wire per event: a demo-shop visit as the collector encodes it, against the
same events as Segment-style JSON batches, gzipped.

How this works: one visit to the demo shop is driven through `collector.Collector` (the same
product page script as tests/collector/wire_size.py: scroll crossings, engaged time from
activity, a hover, maybe a cart add): the catalog, two product pages (the second adds to the
cart), then the checkout page, where the visitor signs in (identify), starts the checkout and
buys. Each page load gets its own Collector (its own stream), sent the way the browser host
sends (collector/browser.py): a tick every 250 ms seals a batch once its oldest event is the
site's `batch_max_age_ms` old (the demo site's, from examples/demo.toml), commands included, and
leaving the page (hidden) sends the rest. Every batch is one gRPC-Web frame: its bytes + the
5-byte frame header. The collectors are resumable, as the browser host's are, and each batch is
answered as the server answers it (server/rpc/resume.py keeps the streams, and the acks carry
its tokens and kept-string counts), so a page load's later batches go resumed.

The JSON side: each wire batch, decoded back (`collector.decode_batch`), becomes one
`{"batch": [...], "sentAt": ...}` of Segment-style track calls (event, properties, anonymousId,
userId once known, ISO timestamp, context with page, userAgent, locale and timezone, a UUID
messageId), serialized compactly and gzipped at level 6. Nothing here knows the wire format:
it measures whatever the collector produces.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import json
import random
import tomllib
import uuid
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from collector import BatchLimits, Collector, decode_batch, sign_email
from collector.gen.pulsewire.v1 import batch_pb2
from scripts.benchmarks.server_stack import EXAMPLES, REPO
from server.ingest.resume import ResumedStreams


def _wire_size_tests() -> ModuleType:
    """tests/collector/wire_size.py, where the wire-size tests keep their page script."""
    spec = importlib.util.spec_from_file_location(
        "wire_size", REPO / "tests" / "collector" / "wire_size.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SCRIPT = _wire_size_tests()
CONTEXT, DEVICE_ID, SITE_KEY, T0 = (_SCRIPT.CONTEXT, _SCRIPT.DEVICE_ID, _SCRIPT.SITE_KEY,
                                    _SCRIPT.T0)
product_page = _SCRIPT.product_page

TICK_MS = 250  # the browser host's tick (collector/browser.py)
GRPC_WEB_FRAME_BYTES = 5
USER_AGENT = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/131.0.0.0 Safari/537.36")
SHOP = "https://shop.example"


class _Storage(dict[str, str]):
    def set(self, key: str, value: str) -> None:
        self[key] = value


class _BrowserLikeHost:
    """One page load's collector, sent as the browser host sends; acked at once, as the
    server acks (`server` keeps the resumed streams). `sent` holds what went on the wire,
    `in_full` the same batches in full, with their send time as sent_at_ms."""

    def __init__(self, stream: int, now_ms: int, max_age_ms: int, server: ResumedStreams,
                 storage: _Storage, resumable: bool = True) -> None:
        self.collector = Collector(SITE_KEY, DEVICE_ID, stream=stream, context=CONTEXT,
                                   limits=BatchLimits(max_age_ms=max_age_ms),
                                   resumable=resumable, storage=storage)
        self.sent: list[batch_pb2.Batch] = []
        self.in_full: list[batch_pb2.Batch] = []
        self._server = server
        self._next_tick = now_ms + TICK_MS
        self._now_ms = now_ms

    def page_view(self, path: str, title: str, referrer: str, now_ms: int) -> None:
        self._until(now_ms)
        self.collector.page_view(path, title, referrer, now_ms)

    def track(self, name: str, props: dict[str, Any], now_ms: int) -> None:
        self._until(now_ms)
        self.collector.track(name, props, now_ms)

    def identify(self, user_id: str, email: str, signature: str, now_ms: int) -> None:
        self._until(now_ms)
        self.collector.identify(user_id, email, signature, now_ms)

    def scroll_to(self, depth_pct: float, now_ms: int) -> None:
        self._until(now_ms)
        self.collector.scroll_to(depth_pct, now_ms)

    def activity(self, now_ms: int) -> None:
        self._until(now_ms)
        self.collector.activity(now_ms)

    def pointer_enter(self, target: str, now_ms: int) -> None:
        self._until(now_ms)
        self.collector.pointer_enter(target, now_ms)

    def pointer_leave(self, target: str, now_ms: int) -> None:
        self._until(now_ms)
        self.collector.pointer_leave(target, now_ms)

    def tick(self, now_ms: int) -> list[batch_pb2.Batch]:
        self._until(now_ms)
        return []

    def leave(self, now_ms: int) -> None:
        self._until(now_ms)
        self.collector.page_end(now_ms)
        self._send(self.collector.flush(now_ms))

    def _until(self, now_ms: int) -> None:
        while self._next_tick <= now_ms:
            self._now_ms = self._next_tick
            self._send(self.collector.tick(self._next_tick))
            self._next_tick += TICK_MS
        self._now_ms = now_ms

    def _send(self, batches: list[batch_pb2.Batch]) -> None:
        for batch in batches:
            full = batch_pb2.Batch()
            full.CopyFrom(self.collector.batcher.queue.get(batch.seq))
            full.sent_at_ms = self._now_ms
            self.sent.append(batch)
            self.in_full.append(full)
            ack = batch_pb2.Ack(seq=batch.seq, stream=full.stream)
            ack.resume, ack.strings_kept = self._server.answer(
                batch, *self._server.read(batch, self._now_ms), self._now_ms)
            self.collector.acked(ack)


def demo_visit(max_age_ms: int, resumable: bool = True,
               ) -> tuple[list[batch_pb2.Batch], list[batch_pb2.Batch]]:
    """Catalog, two product pages, checkout with sign-in and purchase: every batch as sent,
    and the same in full."""
    server = ResumedStreams()
    storage = _Storage()  # the device's localStorage, which page loads share
    hosts: list[_BrowserLikeHost] = []
    t = T0
    pages = [("/demo/", "premium-laptop", False), ("/demo/product/premium-laptop",
             "premium-laptop", False), ("/demo/product/anc-headphones", "anc-headphones", True)]
    for stream, (path, sku, add) in enumerate(pages, start=1):
        host = _BrowserLikeHost(stream, t, max_age_ms, server, storage, resumable)
        t = product_page(host, t, path, sku, add_to_cart=add)  # makes Collector calls
        host.leave(t)
        hosts.append(host)
        t += 800
    host = _BrowserLikeHost(len(pages) + 1, t, max_age_ms, server, storage, resumable)
    host.page_view("/demo/checkout", "Checkout – Acme Store", "/demo/product/anc-headphones", t)
    host.scroll_to(40, t + 3_100)
    email = "ann.berger@example.com"
    host.identify("u_1842", email, sign_email("change-me", email), t + 9_400)
    host.track("checkout_start", {"cart_id": "c_8f3a2b", "value": 1299.0}, t + 11_200)
    host.scroll_to(95, t + 24_700)
    host.track("purchase", {"order_id": "o_5521", "value": 1299.0, "cart_id": "c_8f3a2b"},
               t + 31_900)
    host.leave(t + 34_000)
    hosts.append(host)
    return [b for h in hosts for b in h.sent], [b for h in hosts for b in h.in_full]


def demo_max_age_ms() -> int:
    """The demo site's batch age limit (examples/demo.toml), else the collector's default."""
    sites = tomllib.loads((EXAMPLES / "demo.toml").read_text()).get("sites", [{}])
    return int(sites[0].get("batch_max_age_ms", BatchLimits().max_age_ms))


def segment_json(batches: list[batch_pb2.Batch]) -> list[bytes]:
    """One compact Segment-style JSON batch per wire batch."""
    rng = random.Random(7)
    pages: dict[int, dict[str, str]] = {}
    user_id: str | None = None
    out = []
    for batch in batches:
        calls = []
        for event in decode_batch(batch):
            fields = dataclasses.asdict(event)
            at_ms = fields.pop("at_ms")
            name = _snake(type(event).__name__)
            if name == "page_view":
                pages[batch.stream] = {"path": fields["path"], "referrer": fields["referrer"],
                                       "title": fields["title"], "url": SHOP + fields["path"]}
            if name == "identify":
                user_id = fields["user_id"]
            fields.pop("path", None)
            call = {"type": "track", "event": name, "properties": fields,
                    "anonymousId": batch.device_id, "timestamp": _iso(at_ms),
                    "context": {"page": pages.get(batch.stream, {}), "userAgent": USER_AGENT,
                                "locale": CONTEXT.locale, "timezone": CONTEXT.timezone},
                    "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4))}
            if user_id:
                call["userId"] = user_id
            calls.append(call)
        document = {"batch": calls, "sentAt": _iso(batch.sent_at_ms)}
        out.append(json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode())
    return out


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _wire_bytes(batches: list[batch_pb2.Batch]) -> int:
    return sum(len(b.SerializeToString()) + GRPC_WEB_FRAME_BYTES for b in batches)


def measure() -> dict[str, Any]:
    """The demo site's batch age; beside it, the same batches not resumed, the collector's
    default age, and one batch per page load (a host that sent only when the page goes away):
    how much resuming and batching buy."""
    max_age_ms = demo_max_age_ms()
    batches, in_full = demo_visit(max_age_ms)
    events = sum(len(b.events) for b in batches)
    wire = _wire_bytes(batches)
    default_age, _ = demo_visit(BatchLimits().max_age_ms)
    per_page, _ = demo_visit(10**9)
    not_resumed, _ = demo_visit(max_age_ms, resumable=False)
    documents = segment_json(in_full)
    plain = sum(len(d) for d in documents)
    zipped = sum(len(gzip.compress(d, compresslevel=6)) for d in documents)
    figures = {"wire_bytes_per_event": round(wire / events, 2),
               "json_gzip_bytes_per_event": round(zipped / events, 2),
               "json_bytes_per_event": round(plain / events, 2),
               "json_gzip_to_wire_ratio": round(zipped / wire, 2),
               "wire_events": events, "wire_batches": len(batches),
               "wire_batch_max_age_ms": max_age_ms,
               "wire_bytes_per_event_not_resumed": round(_wire_bytes(not_resumed) / events, 2),
               "wire_resumed_batches": sum(1 for b in batches if b.resume),
               "wire_bytes_per_event_default_age": round(_wire_bytes(default_age) / events, 2),
               "wire_bytes_per_event_one_batch_per_page": round(_wire_bytes(per_page) / events,
                                                                2)}
    print(f"wire: {events} events in {len(batches)} batches, {figures['wire_bytes_per_event']} "
          f"B/event; Segment-style JSON gzipped {figures['json_gzip_bytes_per_event']} B/event "
          f"({figures['json_gzip_to_wire_ratio']}x)", flush=True)
    return figures

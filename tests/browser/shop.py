"""What the browser tests share: the server in demo mode with a real SMTP catcher, the Chromium
driver, and reading back what the page put on the wire."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import write_sequences

from collector import decode_batch
from collector.events import Event
from collector.gen.pulsewire.v1 import batch_pb2
from collector.grpc_web import TRAILER_FLAG, split_frames
from server.app import App, running
from server.config import load_settings
from server.ingest import Ingestor
from server.ingest.resume import ResumeUnknown
from server.mail.catalog import Catalog
from server.mail.mailcatcher import MailCatcher

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DRIVER = Path(__file__).with_name("driver.mjs")
SITE_KEY, SITE_SECRET = "demo", "browser-test-secret"

# The cart reminder, on signals the collector measures; waits are short so a test takes seconds.
ENGAGED_CART = """
    id: engaged-cart
    entry:
      event: cart_add
      if:
        - {event: scroll, where: {path: /demo/product/*, depth_pct: {gte: 70}}, within: 30m}
        - {event: dwell, where: {path: /demo/product/*, engaged_ms: {gte: 3000}}, within: 30m}
        - {event: hover, where: {target: "card:*"}, within: 30m}
    exit_on:
      - event: purchase
    steps:
      - wait_for: {event: purchase, timeout: WAIT}
        on_event: exit
      - send:
          template: cart-reminder
          vars: {discount_code: SAVE15, offer_type: free_warranty}
"""
# Any cart, however it arrived: shows that a cart_add reached the engine.
CART_SEEN = """
    id: cart-seen
    entry: {event: cart_add}
    steps:
      - wait_for: {event: purchase, timeout: 1d}
        on_event: exit
      - send: {template: cart-reminder}
"""
# Short thresholds for tests, as a site could set them.
SIGNALS = "{idle_after_ms=3000, dwell_thresholds_ms=[3000, 6000], hover_min_ms=500}"


@dataclass
class Shop:
    app: App
    catcher: MailCatcher
    received: list[batch_pb2.Batch] = field(default_factory=list)  # each in full
    resumed: list[batch_pb2.Batch] = field(default_factory=list)  # as sent, when resumed
    applied: list[batch_pb2.Batch] = field(default_factory=list)  # in full, once applied

    def tap(self) -> None:
        """Keep a copy of every batch the server is given, by any transport."""
        ingestor = self.app.ingestor
        assert ingestor is not None
        accept = ingestor.accept

        async def tapped(batch: batch_pb2.Batch, peer: str = "") -> batch_pb2.Ack:
            if batch.resume:
                self.resumed.append(batch)
            self.received.append(_in_full(ingestor, batch))
            return await accept(batch, peer)
        ingestor.accept = tapped  # type: ignore[method-assign]

    def tap_applied(self) -> None:
        """Keep a copy in full of every batch the server applied: acked, and neither a
        duplicate (acked with accepted=0) nor a bot's (counted, never stored)."""
        ingestor = self.app.ingestor
        assert ingestor is not None
        accept = ingestor.accept

        async def tapped(batch: batch_pb2.Batch, peer: str = "") -> batch_pb2.Ack:
            full = _in_full(ingestor, batch)
            ack = await accept(batch, peer)
            if not ack.duplicate and full.context.device_class != full.context.BOT:
                self.applied.append(full)
            return ack
        ingestor.accept = tapped  # type: ignore[method-assign]

    def batches(self) -> list[batch_pb2.Batch]:
        """The distinct batches the server was given, in (device, stream, seq) order."""
        found = {(b.device_id, b.stream, b.seq): b for b in self.received}
        return [found[key] for key in sorted(found)]

    def events(self) -> list[Event]:
        return [event for batch in self.batches() for event in decode_batch(batch)]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.app.http_port}"


def _in_full(ingestor: Ingestor, batch: batch_pb2.Batch) -> batch_pb2.Batch:
    """A copy of the batch in full, timed by the client clock as corrected at receipt (a
    resumed batch with what the server keeps of its stream)."""
    now_ms = int(time.time() * 1000)  # the server's clock in these tests
    copy = batch_pb2.Batch()
    copy.CopyFrom(batch)
    if batch.resume:
        with contextlib.suppress(ResumeUnknown):  # else refused: it comes again in full
            copy = ingestor.resumed.get(batch.resume, now_ms).in_full(batch)
    if not copy.base_time_ms:
        copy.base_time_ms, copy.age_ms = now_ms - copy.age_ms, 0
    return copy


@asynccontextmanager
async def shop(tmp: Path, *, wait: str = "6s", mode: str = "browser",
               endpoint: str = "", sequences: tuple[str, ...] = (),
               env: Mapping[str, str] | None = None) -> AsyncIterator[Shop]:
    """The server in demo mode; `sequences` run beside the two above, `env` overrides or adds
    settings (e.g. the console on, with an operator token)."""
    async with MailCatcher(tmp / "mail", smtp_port=0, http_port=0) as catcher:
        environ = {
            "PULSEWIRE_SERVER__GRPC_LISTEN": "127.0.0.1:0",
            "PULSEWIRE_SERVER__HTTP_LISTEN": "127.0.0.1:0",
            "PULSEWIRE_SERVER__DATA_DIR": str(tmp / "data"),
            "PULSEWIRE_SERVER__SHARDS": "2",
            "PULSEWIRE_SEQUENCES__DIR": str(write_sequences(
                tmp / "seq", ENGAGED_CART.replace("WAIT", wait), CART_SEEN, *sequences)),
            "PULSEWIRE_TEMPLATES__DIR": str(EXAMPLES / "templates"),
            "PULSEWIRE_SMTP__PORT": str(catcher.smtp_port),
            "PULSEWIRE_WEB__ASSETS_DIR": str(ROOT / "build" / "web"),
            "PULSEWIRE_WEB__DEMO_SHOP": "true",
            "PULSEWIRE_WEB__DEMO_CATALOG": str(EXAMPLES / "catalog.csv"),
            "PULSEWIRE_WEB__DEMO_LOADER_MODE": mode,
            "PULSEWIRE_WEB__DEMO_LOADER_ENDPOINT": endpoint,
            "PULSEWIRE_SITES": f'[{{key="{SITE_KEY}", secret="{SITE_SECRET}", '
                               f'batch_max_age_ms=500, signals={SIGNALS}}}]',
            **(env or {}),
        }
        settings = load_settings(None, environ)
        Catalog.open(tmp / "data" / "catalog.sqlite").import_csv(EXAMPLES / "catalog.csv")
        async with running(settings) as app:
            found = Shop(app, catcher)
            found.tap()
            yield found


async def drive(shop: Shop, scenario: str, **plan: Any) -> dict[str, Any]:
    """One scripted Chromium visit; the driver's facts, requests and POST bodies."""
    arguments = json.dumps({"base": shop.base, "scenario": scenario, **plan})
    process = await asyncio.create_subprocess_exec(
        "node", str(DRIVER), arguments, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 240)
    lines = out.decode().strip().splitlines()
    if process.returncode != 0 or not lines:
        raise AssertionError(f"driver failed ({process.returncode}): {err.decode()[-3000:]}")
    facts: dict[str, Any] = json.loads(lines[-1])
    if "error" in facts:
        raise AssertionError(f"driver: {facts['error']}")
    return facts


def collectors(running: Shop) -> set[str]:
    """Which collectors made the batches the server was given (a page load's first batch
    names it; later ones leave the context out)."""
    return {b.context.collector for b in running.batches()} - {""}


def sent_batches(facts: dict[str, Any]) -> list[batch_pb2.Batch]:
    """Every distinct batch the page sent by gRPC-Web or beacon, in (stream, seq) order."""
    found: dict[tuple[str, int, int], batch_pb2.Batch] = {}
    for post in facts["posts"]:
        if post["url"].endswith(("/pulsewire.v1.Ingest/Send", "/pw/v1/beacon")):
            for flags, message in split_frames(base64.b64decode(post["body"])):
                if flags & TRAILER_FLAG:
                    continue
                batch = batch_pb2.Batch.FromString(message)
                found[(batch.device_id, batch.stream, batch.seq)] = batch
    return [found[key] for key in sorted(found)]


def off_machine(facts: dict[str, Any]) -> list[str]:
    """URLs the pages and their workers asked for anywhere but this machine's loopback, by the
    automation protocol's account and by Chromium's own network log (which also sees beacons
    sent at page close). Chromium's own update and sign-in checks are not the pages': the
    driver's resolver rule sends them nowhere."""
    allowed = ("http://127.0.0.1:", "about:", "data:", "blob:")
    by_pages = [r["url"] for r in facts["netlog"] if r["initiator"] != "not an origin"]
    assert any(url.endswith(("/pw/v1/signals", "/pw/v1/beacon", "/Ingest/Send", "/collect"))
               for url in by_pages)  # the log did see what the pages sent
    return [url for url in [*facts["requests"], *by_pages] if not url.startswith(allowed)]

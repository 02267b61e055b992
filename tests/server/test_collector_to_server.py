"""The collector's own batches through the real server: a shopper's measured session (scroll,
engaged dwell, hover, a product view, a cart) reaches the engine, satisfies a sequence whose
entry needs those signals, and the retry path (same seq) is applied once."""

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from harness import (
    SITE_KEY,
    SITE_SECRET,
    eventually,
    ingest_client,
    rows,
    server,
    settings_for,
    stat,
    write_sequences,
)

from collector import BatchContext, Collector
from collector.gen.pulsewire.v1 import batch_pb2
from server.clock import ManualClock
from server.ingest.batches import sign_email

T0 = 1_800_000_000_000
ENGAGED_CART = """
    id: engaged-cart
    entry:
      event: cart_add
      if:
        - {event: scroll, where: {path: /product/*, depth_pct: {gte: 70}}, within: 30m}
        - {event: dwell, where: {path: /product/*, engaged_ms: {gte: 30000}}, within: 30m}
        - {event: hover, where: {target: "product:*"}, within: 30m}
    steps:
      - wait_for: {event: purchase, timeout: 1h}
        on_event: exit
      - send: {template: cart-reminder}
"""


def _timed_session(collector: Collector) -> list[tuple[int, Callable[[], None]]]:
    """A shopper's session as (time, call) steps: reading and scrolling a product page for
    35 s, resting on the product card, signing in and adding it to the cart."""
    def arrive() -> None:
        collector.page_view("/product/premium-laptop", "Aero Pro 14", "", T0)
        collector.visibility(True, T0)
        collector.focus(True, T0)

    t = T0
    steps: list[tuple[int, Callable[[], None]]] = [(t, arrive)]
    for step in range(1, 8):
        t += 5_000
        steps.append((t, functools.partial(collector.scroll_to, min(100, step * 15), t)))
    steps.append((t, functools.partial(collector.pointer_enter, "product:premium-laptop", t)))
    t += 1_200
    email = "ann@example.com"
    steps += [(t, functools.partial(collector.pointer_leave, "product:premium-laptop", t)),
              (t, functools.partial(collector.identify, "", email,
                                    sign_email(SITE_SECRET, email), t)),
              (t, functools.partial(collector.track, "cart_add",
                                    {"sku": "premium-laptop", "price": 1899.0, "cart_id": "c1"},
                                    t)),
              (t + 1, functools.partial(collector.page_end, t + 1))]
    return steps


def _session(collector: Collector) -> None:
    for _, do in _timed_session(collector):
        do()


def test_a_measured_session_from_the_collector_triggers_a_sequence(tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", ENGAGED_CART))
        clock = ManualClock(T0 + 60_000)
        async with server(settings, clock) as app, ingest_client(app) as client:
            collector = Collector(SITE_KEY, "browser-1",
                                  context=BatchContext(timezone="Europe/Berlin"))
            _session(collector)
            batches = collector.flush(T0 + 60_000)
            assert batches
            for batch in batches:
                ack = await client.Send(batch)
                assert (ack.seq, ack.rejection.code) == (batch.seq, 0)
                collector.ack(ack.seq)
            retried = await client.Send(batches[-1])  # a retry after a lost ack
            assert retried.duplicate
            entered = [await s.read("SELECT n FROM stats WHERE counter = 'entered'")
                       for s in app.shards]
            assert sum(r[0][0] for r in entered if r) == 1
            clock.advance(3_600_000)

            async def outbox() -> list:
                return [r for s in app.shards for r in await s.read(
                    "SELECT email, template FROM outbox")]

            for _ in range(200):
                if await outbox():
                    break
                await asyncio.sleep(0.02)
            assert await outbox() == [("ann@example.com", "cart-reminder")]

    asyncio.run(scenario())


def test_a_resumable_collector_goes_resumed_and_back_in_full_after_a_restart(
        tmp_path: Path) -> None:
    """Batches sent as they come due: after the first ack they go resumed, and the session
    triggers the sequence as before; a restarted server no longer holds the stream, refuses
    the next resumed batch with FAILED_PRECONDITION, and the collector sends it in full."""
    async def send(client: Any, collector: Collector, batches: list[batch_pb2.Batch],
                   resumed: list[bool]) -> None:
        for batch in batches:
            try:
                ack = await client.Send(batch)
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
                collector.forget_resume()
                continue
            resumed.append(bool(batch.resume))
            collector.acked(ack)

    async def scenario() -> None:
        settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", ENGAGED_CART))
        clock = ManualClock(T0)
        collector = Collector(SITE_KEY, "browser-2", stream=77, resumable=True,
                              context=BatchContext(timezone="Europe/Berlin"))
        resumed: list[bool] = []
        async with server(settings, clock) as app, ingest_client(app) as client:
            for t, do in _timed_session(collector):
                clock.set(t)
                do()
                await send(client, collector, collector.tick(t), resumed)
            clock.set(T0 + 60_000)
            await send(client, collector, collector.flush(T0 + 60_000), resumed)
            assert resumed[0] is False and resumed.count(True) >= 3
            assert collector.pending() == []
            assert await stat(app, "entered") == 1
        async with server(settings, clock) as app, ingest_client(app) as client:
            collector.track("cart_add", {"sku": "mouse", "price": 19.0, "cart_id": "c1"},
                            T0 + 61_000)
            clock.set(T0 + 62_000)
            await send(client, collector, collector.flush(T0 + 62_000), resumed)
            assert len(collector.pending()) == 1  # refused: the restarted server lost the token
            await send(client, collector, collector.resend(T0 + 62_100), resumed)
            assert collector.pending() == [] and resumed[-1] is False
            clock.set(T0 + 62_100 + 3_600_000)
            await eventually(lambda: rows(app, "SELECT email, template FROM outbox"))
            assert await rows(app, "SELECT email, template FROM outbox") == [
                ("ann@example.com", "cart-reminder")]

    asyncio.run(scenario())

"""The collector's own batches through the real server: a shopper's measured session (scroll,
engaged dwell, hover, a product view, a cart) reaches the engine, satisfies a sequence whose
entry needs those signals, and the retry path (same seq) is applied once."""

import asyncio
from pathlib import Path

from harness import SITE_KEY, SITE_SECRET, ingest_client, server, settings_for, write_sequences

from collector import BatchContext, Collector
from server.clock import ManualClock
from server.rpc.batches import sign_email

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


def _session(collector: Collector) -> None:
    t = T0
    collector.page_view("/product/premium-laptop", "Aero Pro 14", "", t)
    collector.visibility(True, t)
    collector.focus(True, t)
    for step in range(1, 8):  # reading and scrolling for 35 s
        t += 5_000
        collector.scroll_to(min(100, step * 15), t)
    collector.pointer_enter("product:premium-laptop", t)
    t += 1_200
    collector.pointer_leave("product:premium-laptop", t)
    collector.identify("", "ann@example.com", sign_email(SITE_SECRET, "ann@example.com"), t)
    collector.track("cart_add", {"sku": "premium-laptop", "price": 1899.0, "cart_id": "c1"}, t)
    collector.page_end(t + 1)


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

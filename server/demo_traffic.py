"""Shopper traffic for the demo: sessions sent over real gRPC to a running server.

`python -m server.demo_traffic` sends one shopper who looked at the premium laptop, added it to
a cart 61 minutes ago and never came back, signed in as ann@example.com with the site's secret
(the demo's "change-me"). The batch carries the shopper's own past timestamps and no send time,
as a site backend replaying its records would, so the cart's 60-minute wait is already over
when the server applies it: the reminder reaches the mail catcher at once. A second shopper
buys within the hour and gets nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import grpc

from collector.gen.pulsewire.v1 import batch_pb2
from server.ingest.batches import sign_email
from server.rpc.gen.pulsewire.v1 import ingest_pb2_grpc

MINUTE = 60_000


def _session(site: str, secret: str, device: str, email: str, start_ms: int,
             buys: bool) -> batch_pb2.Batch:
    strings = ["/product/premium-laptop", "Premium Laptop", "", "premium-laptop",
               f"cart-{device}", "product_view", "sku", f"order-{device}", "USD"]
    batch = batch_pb2.Batch(site_key=site, device_id=device, seq=1, base_time_ms=start_ms,
                            strings=strings)
    batch.identity.email = email
    batch.identity.signature = sign_email(secret, email)
    batch.context.timezone = "Europe/Berlin"
    batch.context.currency = "USD"
    batch.events.add(dt_ms=0).page_view.SetInParent()
    view = batch.events.add(dt_ms=500)
    view.custom.name = 5
    view.custom.props.add(key=6, str=3)
    batch.events.add(dt_ms=4_000).scroll.depth_pct = 90
    batch.events.add(dt_ms=30_000).dwell.engaged_ms = 30_000
    cart = batch.events.add(dt_ms=5_000).cart_add
    cart.sku, cart.qty, cart.price_minor, cart.cart_id = 3, 1, 189_900, 4
    if buys:
        purchase = batch.events.add(dt_ms=10 * MINUTE).purchase
        purchase.order_id, purchase.value_minor, purchase.currency, purchase.cart_id = (
            7, 189_900, 8, 4)
    return batch


async def send(target: str, site: str, secret: str) -> None:
    now = time.time_ns() // 1_000_000
    async with grpc.aio.insecure_channel(target) as channel:
        stub = ingest_pb2_grpc.IngestStub(channel)  # type: ignore[no-untyped-call]
        for device, email, buys in (("demo-ann", "ann@example.com", False),
                                    ("demo-bob", "bob@example.com", True)):
            ack = await stub.Send(_session(site, secret, f"{device}-{now}", email,
                                           now - 62 * MINUTE, buys))
            outcome = "buys within the hour" if buys else "abandons the cart"
            print(f"{email}: {outcome}; acked {ack.accepted} events")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grpc", default="127.0.0.1:50051")
    parser.add_argument("--site", default="demo")
    parser.add_argument("--secret", default="change-me")
    args = parser.parse_args()
    asyncio.run(send(args.grpc, args.site, args.secret))


if __name__ == "__main__":
    main()

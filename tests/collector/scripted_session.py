"""One scripted visit to a shop, driven through the Collector: the same source runs in CPython
(test_pyodide_boot.py imports it) and in Pyodide (pyodide_batch.mjs copies this file's text
into Pyodide's file system and imports it there), so the two sides cannot drift apart.

`run()` returns every batch the host would send, serialized, in the order it sends them. The
calls cover every signal the facade takes: page views, scroll depth, visibility (hide and
show), hover, typed and custom tracks, identify, a tick and a flush; small batch limits make
the visit span several batches, so sealing, seq and the identity stamp are compared too.
"""

from __future__ import annotations

from collector import BatchContext, BatchLimits, Collector, sign_email
from collector.gen.pulsewire.v1 import batch_pb2

SITE_KEY = "pk_7Hq2ZxV9"
DEVICE_ID = "k3Jx9QvT2mWb7LpZ4nRc1A"
T0 = 1_764_288_000_000  # 2025-11-28 00:00:00 UTC
CONTEXT = BatchContext("Europe/Berlin", "de-DE", 1440, 900, "desktop", "EUR")
LIMITS = BatchLimits(max_events=8, max_age_ms=30_000)


def run() -> list[bytes]:
    c = Collector(SITE_KEY, DEVICE_ID, stream=3, context=CONTEXT, limits=LIMITS)
    sent: list[bytes] = []

    def send(batches: list[batch_pb2.Batch]) -> None:
        for batch in batches:
            sent.append(batch.SerializeToString())
            c.ack(batch.seq)

    c.page_view("/", "Acme Shop", "https://www.google.com/", T0)
    c.scroll_to(40, T0 + 1_200)
    c.page_view("/product/laptop-pro-14", "Laptop Pro 14 – Acme", "/", T0 + 4_000)
    c.scroll_to(27, T0 + 6_317)
    c.pointer_enter("product:lp14:add-to-cart", T0 + 7_000)
    c.pointer_leave("product:lp14:add-to-cart", T0 + 8_450)
    c.pointer_enter("product:lp14:gallery", T0 + 9_000)
    c.scroll_to(83, T0 + 11_841)  # still hovering the gallery
    send(c.tick(T0 + 12_000))
    c.visibility(False, T0 + 20_000)  # tab hidden: hover closed, scroll and dwell so far sent
    c.visibility(True, T0 + 95_000)
    c.track("cart_add", {"sku": "lp14", "price": 1299.99, "qty": 1, "cart_id": "c_8f3a2b"},
            T0 + 97_000)
    email = "Ann.Berger@Example.com"
    c.identify("u_1842", email, sign_email("change-me", email), T0 + 99_000,
               traits={"plan": "pro", "city": "Köln"})
    c.track("size_guide", {"size": "L", "fit": 0.75, "in_stock": True, "count": 3, "x": None},
            T0 + 101_500)
    c.page_view("/cart", "Warenkorb ☃", "/product/laptop-pro-14", T0 + 104_000)
    send(c.tick(T0 + 140_000))
    c.track("checkout_start", {"cart_id": "c_8f3a2b", "value": 1299.99}, T0 + 141_000)
    c.page_end(T0 + 150_000)
    send(c.flush(T0 + 150_500))
    return sent

"""Realistic sessions for the wire-size tests and the measurement script."""

from __future__ import annotations

from collector import BatchContext, BatchLimits, Collector
from collector.gen.pulsewire.v1 import batch_pb2

CONTEXT = BatchContext("Europe/Berlin", "de-DE", 1440, 900, "desktop", "EUR")
SITE_KEY = "pk_7Hq2ZxV9"
DEVICE_ID = "k3Jx9QvT2mWb7LpZ4nRc1A"  # 22 chars: 128 random bits in base64url
T0 = 1_764_288_000_000


def product_page(c: Collector, t: int, path: str, sku: str, *, add_to_cart: bool) -> int:
    """One product page view: 4 scroll crossings, 3 dwell thresholds, 1 hover, maybe a cart
    add; returns the time it ended (without page_end, so only those events are emitted)."""
    name = path.rsplit("/", 1)[-1].replace("-", " ").title() or "Home"
    title = f"{name} – Acme Store"
    c.page_view(path, title, "https://www.google.com/", t)
    depths = [(2_317, 27), (6_841, 53), (11_093, 74), (19_406, 92)]
    signals: list[tuple[int, str, object]] = [(at, "scroll_to", pct) for at, pct in depths]
    signals += [(at, "activity", None) for at in range(20_000, 64_000, 4_013)]
    target = f"product:{sku}"
    signals += [(41_377, "pointer_enter", target), (42_561, "pointer_leave", target)]
    for at, kind, arg in sorted(signals, key=lambda s: s[0]):
        if arg is None:
            c.activity(t + at)
        else:
            getattr(c, kind)(arg, t + at)
    if add_to_cart:
        c.track("cart_add", {"sku": sku, "price": 1299.0, "cart_id": "c_8f3a2b"}, t + 63_902)
    c.tick(t + 64_500)
    return t + 64_500


def one_page_session() -> list[batch_pb2.Batch]:
    # One batch: as if the host only sent at page hide.
    c = Collector(SITE_KEY, DEVICE_ID, context=CONTEXT, limits=BatchLimits(max_age_ms=10**9))
    end = product_page(c, T0, "/product/laptop-pro-14", "lp14", add_to_cart=True)
    return c.flush(end)


def three_page_session() -> list[batch_pb2.Batch]:
    """Home, a product, another product with cart add, then checkout start; page ends
    included; batched with the default limits (5 s max age), so several batches."""
    c = Collector(SITE_KEY, DEVICE_ID, context=CONTEXT)
    sent: list[batch_pb2.Batch] = []
    t = T0
    t = product_page(c, t, "/", "hero", add_to_cart=False)
    sent += c.tick(t)
    t = product_page(c, t + 700, "/product/laptop-pro-14", "lp14", add_to_cart=False)
    sent += c.tick(t)
    t = product_page(c, t + 900, "/product/laptop-air-13", "la13", add_to_cart=True)
    c.track("checkout_start", {"cart_id": "c_8f3a2b", "value": 1299.0}, t + 1_200)
    c.page_end(t + 1_500)
    return sent + c.flush(t + 1_600)


def bytes_per_event(batches: list[batch_pb2.Batch]) -> tuple[int, float, float]:
    """(events, whole batches' bytes per event, events' own bytes per event)."""
    events = sum(len(b.events) for b in batches)
    total = sum(b.ByteSize() for b in batches)
    own = sum(len(e.SerializeToString()) + 2 for b in batches for e in b.events)
    return events, total / events, own / events


if __name__ == "__main__":
    for name, run in [("one page", one_page_session), ("three pages", three_page_session)]:
        batches = run()
        n, whole, own = bytes_per_event(batches)
        print(f"{name}: {len(batches)} batches, {n} events, {whole:.1f} B/event whole batch, "
              f"{own:.1f} B/event for the events alone")

"""The batches the load client sends: shop traffic, encoded by the collector's own encoder.

How this works: a batch body (its string table, events and context) is built and serialized
once, from collector events (`collector.encode_event`, so the bodies follow the wire format
wherever it goes); each send prepends a fresh header (device, seq, times, identity). Two
serialized protobuf messages concatenated parse as one, so header bytes + body bytes is a
Batch, and the server sees every batch as new.

`Traffic` is the steady load: batches of `events_per_batch` events (page views, scrolls, dwell,
hovers, a custom product_view, now and then a cart_add or a purchase) from a pool of devices,
a third of them identified users with signed emails. `Visits` are a shop's visitors for the storage
figure: most anonymous, some signed in, some signing in during the visit.
"""

from __future__ import annotations

import random
import time

from collector import (
    BatchContext,
    CartAdd,
    Custom,
    Dwell,
    Event,
    Hover,
    PageView,
    Purchase,
    Scroll,
    StringTable,
    encode_event,
    sign_email,
)
from collector.gen.pulsewire.v1 import batch_pb2

SITE_KEY, SITE_SECRET = "bench", "bench-secret"
CONTEXT = BatchContext("Europe/Berlin", "de-DE", 1440, 900, "desktop", "EUR", "bench/1")
SKUS = ("premium-laptop", "ultrabook-13", "anc-headphones", "wireless-earbuds")
_KINDS = ("page_view", "scroll", "dwell", "hover", "product_view", "cart_add", "purchase")
_WEIGHTS = (8, 30, 15, 27, 18, 1.5, 0.5)
_BODIES = 200


def body(events: list[Event], path: str) -> bytes:
    """A serialized Batch with only strings, events (dt from the first) and context."""
    strings = StringTable(path)
    batch = batch_pb2.Batch(context=CONTEXT.to_wire())
    last = events[0].at_ms
    for event in events:
        wire = encode_event(event, strings)
        wire.dt_ms, last = event.at_ms - last, event.at_ms
        batch.events.append(wire)
    batch.strings.extend(strings.strings)
    data: bytes = batch.SerializeToString()
    return data


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def header(device: str, seq: int, base_time_ms: int, identity: batch_pb2.Identity | None,
           sent_at_ms: int) -> bytes:
    """The per-send fields: who, which batch, when its first event happened, when it is sent."""
    head = batch_pb2.Batch(site_key=SITE_KEY, device_id=device, seq=seq,
                           base_time_ms=base_time_ms, sent_at_ms=sent_at_ms, identity=identity)
    data: bytes = head.SerializeToString()
    return data


def identity(prefix: str, i: int) -> batch_pb2.Identity:
    email = f"{prefix}-{i}@bench.example"
    return batch_pb2.Identity(user_id=f"{prefix}-user-{i}", email=email,
                              signature=sign_email(SITE_SECRET, email))


class Traffic:
    """Unique batches from a pool of devices, round robin. A device's batches follow each other
    in time, as a collector's do: each starts after the last event of the one before."""

    def __init__(self, prefix: str, devices: int, events_per_batch: int, seed: int) -> None:
        rng = random.Random(seed)
        self._bodies = [_shop_body(rng, events_per_batch) for _ in range(_BODIES)]
        self._devices = [f"{prefix}-{rng.getrandbits(48):012x}-{i}" for i in range(devices)]
        self._identities = [identity(prefix, i) if i % 3 == 0 else None for i in range(devices)]
        self._seqs = [0] * devices
        self._ends_ms = [0] * devices
        self._sent = 0

    def batch(self) -> bytes:
        device, self._sent = self._sent % len(self._devices), self._sent + 1
        self._seqs[device] += 1
        data, span_ms = self._bodies[self._sent % len(self._bodies)]
        now = now_ms()
        base = max(now - span_ms, self._ends_ms[device] + 1)
        self._ends_ms[device] = base + span_ms
        return header(self._devices[device], self._seqs[device], base,
                      self._identities[device], now) + data


def _shop_body(rng: random.Random, events: int) -> tuple[bytes, int]:
    """One product page's worth of events, and their time span in ms."""
    sku = rng.choice(SKUS)
    path, at = f"/product/{sku}", 0
    cart, order = f"cart-{rng.getrandbits(32):x}", f"order-{rng.getrandbits(32):x}"
    out: list[Event] = []
    for kind in rng.choices(_KINDS, _WEIGHTS, k=events):
        at += rng.randint(5, 60) if out else 0  # a busy page: 100 events in ~3 s
        out.append(_shop_event(kind, at, path, sku, cart, order, rng))
    return body(out, path), at


def _shop_event(kind: str, at: int, path: str, sku: str, cart: str, order: str,
                rng: random.Random) -> Event:
    if kind == "page_view":
        return PageView(at, path, sku.replace("-", " ").title(), "https://search.example/")
    if kind == "scroll":
        return Scroll(at, path, rng.randint(1, 100))
    if kind == "dwell":
        return Dwell(at, path, rng.randint(500, 30_000))
    if kind == "hover":
        return Hover(at, path, "add-to-cart", rng.randint(100, 3000))
    if kind == "product_view":
        return Custom(at, "product_view", (("sku", sku),))
    if kind == "cart_add":
        return CartAdd(at, sku, 1, 12_999, cart)
    return Purchase(at, order, 12_999, "USD", cart)


class Visits:
    """A shop's visitors, one device each: of every ten, six browse anonymously, three are
    signed in from their first batch (returning customers), one browses anonymously and signs
    in with a second batch (the device's history merges into the user). Every third adds to
    the cart, which starts sequences and their timers. Part 0 is every user's browsing batch,
    part 1 the sign-in batches, sent once part 0 is acked."""

    def __init__(self, prefix: str, users: int, seed: int) -> None:
        rng = random.Random(seed)
        self.prefix = prefix
        self.parts = (range(users), range(_SIGNS_IN_LATER, users, 10))
        self._browse = [[_browse_body(rng, cart) for _ in range(_BODIES)] for cart in (0, 1)]
        self._sign_in = [_sign_in_body() for _ in range(_BODIES)]

    def events(self) -> int:
        return sum(len(self._body(user, part)[1]) for part, users in enumerate(self.parts)
                   for user in users)

    def batch(self, user: int, part: int) -> bytes:
        (data, span_ms), _ = self._body(user, part)
        signed_in = part == 1 or user % 10 in _SIGNED_IN
        who = identity(self.prefix, user) if signed_in else None
        now = now_ms()  # part 1 is sent after part 0, so it starts later
        return header(f"{self.prefix}-device-{user}", part + 1, now - span_ms, who, now) + data

    def _body(self, user: int, part: int) -> tuple[tuple[bytes, int], list[Event]]:
        pool = self._sign_in if part else self._browse[user % 3 == 0]
        return pool[user % len(pool)]


_SIGNED_IN = (6, 7, 8)  # of every ten users
_SIGNS_IN_LATER = 9


def _browse_body(rng: random.Random, cart: int) -> tuple[tuple[bytes, int], list[Event]]:
    sku = rng.choice(SKUS)
    path = f"/product/{sku}"
    events: list[Event] = [
        PageView(0, path, sku.replace("-", " ").title(), "https://search.example/"),
        Custom(150, "product_view", (("sku", sku),)),
        Scroll(2_300, path, 25), Scroll(6_800, path, 50), Scroll(11_000, path, 75),
        Dwell(10_000, path, 10_000), Dwell(30_000, path, 30_000),
        Hover(31_200, path, f"product:{sku}", rng.randint(500, 3000)),
    ]
    if cart:
        events.append(CartAdd(33_000, sku, 1, 129_900, f"cart-{rng.getrandbits(32):x}"))
    events.sort(key=lambda e: e.at_ms)
    return (body(events, path), events[-1].at_ms), events


def _sign_in_body() -> tuple[tuple[bytes, int], list[Event]]:
    # who: the batch's identity, as in every batch the collector seals after an identify
    events: list[Event] = [PageView(0, "/account", "Sign in", "/"), Scroll(1_500, "/account", 50)]
    return (body(events, "/account"), events[-1].at_ms), events

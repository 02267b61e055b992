"""Collector events: encoding into wire events and back, and what track() names become."""

from __future__ import annotations

import pytest

from collector.events import (
    CartAdd,
    CartRemove,
    CheckoutStart,
    Custom,
    Dwell,
    Event,
    Form,
    Hover,
    Identify,
    Media,
    PageView,
    Purchase,
    Scroll,
    StringTable,
    decode_event,
    encode_event,
)
from collector.track import InvalidTrack, minor_units, tracked_event

EVENTS: list[Event] = [
    PageView(5, "/p", "Title", "https://ref.example/"),
    PageView(5, "/p"),
    Scroll(5, "/p", 25),
    Dwell(5, "/other", 30_000),
    Hover(5, "/p", "product:sku-1", 812),
    CartAdd(5, "sku-1", 1, 1999, "cart-1"),
    CartAdd(5, "sku-1", 3, 0, ""),
    CartRemove(5, "sku-2", 2, 500, "cart-1"),
    CheckoutStart(5, "cart-1", 4_999),
    Purchase(5, "order-9", 4_999, "EUR", "cart-1"),
    Form(5, "newsletter", "signup"),
    Media(5, "intro.mp4", "download"),
    Identify(5, "u1", "a@example.com", "ab" * 32, (("plan", "pro"),)),
    Custom(5, "x", (("s", "v"), ("i", -3), ("f", 1.5), ("b", False), ("t", True), ("z", 0))),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_round_trip(event: Event) -> None:
    table = StringTable("/p")
    wire = encode_event(event, table)
    assert decode_event(wire, table.strings, event.at_ms) == event


def test_current_path_and_qty_one_cost_nothing() -> None:
    table = StringTable("/p")
    assert encode_event(Scroll(0, "/p", 0), table).ByteSize() == 2  # tag + empty scroll
    assert encode_event(CartAdd(0, "/p", 1, 0, "/p"), table).ByteSize() == 2


def test_string_table_interns_and_truncates() -> None:
    table = StringTable("/p")
    assert [table.index(s) for s in ["/p", "a", "b", "a"]] == [0, 1, 2, 1]
    table.truncate(2)
    assert table.strings == ["/p", "a"]
    assert table.index("b") == 2


TRACK_CASES: list[tuple[str, dict[str, str | int | float | bool | None], str, Event]] = [
    ("cart_add", {"sku": "s", "price": 19.99, "cart_id": "c"}, "USD",
     CartAdd(1, "s", 1, 1999, "c")),
    ("cart_add", {"sku": "s", "qty": 2, "price": "1000"}, "JPY", CartAdd(1, "s", 2, 1000, "")),
    ("cart_add", {"sku": "s", "price": 1.2345}, "KWD", CartAdd(1, "s", 1, 1235, "")),
    ("cart_remove", {"sku": "s", "price_minor": 250}, "USD", CartRemove(1, "s", 1, 250, "")),
    ("checkout_start", {"cart_id": "c", "value": 0.1}, "EUR", CheckoutStart(1, "c", 10)),
    ("purchase", {"order_id": "o", "value": 12, "currency": "JPY"}, "USD",
     Purchase(1, "o", 12, "JPY", "")),
    ("purchase", {"order_id": "o", "value": 12}, "USD", Purchase(1, "o", 1200, "USD", "")),
    ("form", {"name": "f"}, "", Form(1, "f", "submit")),
    ("form", {"name": "f", "action": "wishlist"}, "", Form(1, "f", "wishlist")),
    ("media", {"asset": "a"}, "", Media(1, "a", "complete")),
    ("product_view", {"sku": "s", "n": 2, "gone": None}, "", Custom(1, "product_view",
                                                                    (("sku", "s"), ("n", 2)))),
]


@pytest.mark.parametrize(("name", "props", "currency", "expected"), TRACK_CASES)
def test_track(
    name: str, props: dict[str, str | int | float | bool | None], currency: str, expected: Event
) -> None:
    assert tracked_event(name, props, 1, currency) == expected


@pytest.mark.parametrize(
    ("name", "props"),
    [
        ("cart_add", {}),
        ("cart_add", {"sku": "s", "qty": -1}),
        ("cart_add", {"sku": "s", "qty": 1.5}),
        ("cart_add", {"sku": "s", "price": "abc"}),
        ("cart_add", {"sku": "s", "price": -1}),
        ("cart_add", {"sku": "s", "price": True}),
        ("purchase", {"value": 3}),
        ("form", {"name": "f", "action": "delete"}),
        ("media", {"asset": "a", "action": "pause"}),
    ],
)
def test_track_refuses(name: str, props: dict[str, str | int | float | bool | None]) -> None:
    with pytest.raises(InvalidTrack):
        tracked_event(name, props, 1, "USD")


def test_minor_units_avoid_float_error() -> None:
    assert [minor_units(v, "USD") for v in (19.99, 0.29, 1.005, "4.10", 7)] == [
        1999, 29, 101, 410, 700,
    ]

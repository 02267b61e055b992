"""What `pw('track', name, props)` becomes.

How this works: a few names are commerce and engagement events the engine knows by type
(cart_add, cart_remove, checkout_start, purchase, form, media); their props are checked and
turned into typed events, with prices converted to integer minor units of the currency
(`price: 19.99` in USD -> 1999; `price_minor: 1999` is taken as is). Decimal arithmetic
avoids float error (19.99 * 100 is 1998.9999...). Any other name is a Custom event whose
props keep their order; props that are None (JS null/undefined) are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from collector.events import (
    CartAdd,
    CartRemove,
    CheckoutStart,
    Custom,
    Event,
    Form,
    FormAction,
    Media,
    MediaAction,
    PropValue,
    Purchase,
)

Props = Mapping[str, PropValue | None]

_ZERO_DECIMALS = frozenset(
    "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split()  # noqa: SIM905
)
_THREE_DECIMALS = frozenset(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"])


class InvalidTrack(ValueError):
    """A tracked event's props do not fit its type (missing sku, bad price, unknown action)."""


def minor_units(amount: PropValue, currency: str) -> int:
    """`amount` in major units of `currency` as an integer count of minor units."""
    if isinstance(amount, bool):
        raise InvalidTrack(f"amount must be a number, not {amount!r}")
    code = currency.upper()
    exponent = 0 if code in _ZERO_DECIMALS else 3 if code in _THREE_DECIMALS else 2
    try:
        value = Decimal(str(amount)).scaleb(exponent)
        minor = int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except (InvalidOperation, ValueError) as e:
        raise InvalidTrack(f"amount {amount!r} is not a number") from e
    if minor < 0:
        raise InvalidTrack(f"amount {amount!r} is negative")
    return minor


def _text(props: Props, key: str, *, required: bool = False) -> str:
    value = props.get(key)
    if value is None:
        if required:
            raise InvalidTrack(f"{key!r} is required")
        return ""
    return str(value)


def _count(props: Props, key: str, default: int) -> int:
    value = props.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidTrack(f"{key!r} must be a non-negative whole number, not {value!r}")
    return value


def _money(props: Props, key: str, currency: str) -> int:
    if props.get(f"{key}_minor") is not None:
        return _count(props, f"{key}_minor", 0)
    value = props.get(key)
    return 0 if value is None else minor_units(value, currency)


def _cart_line(cls: type[CartAdd] | type[CartRemove], props: Props, at: int, cur: str) -> Event:
    sku, cart_id = _text(props, "sku", required=True), _text(props, "cart_id")
    return cls(at, sku, _count(props, "qty", 1), _money(props, "price", cur), cart_id)


def _checkout(props: Props, at: int, cur: str) -> Event:
    return CheckoutStart(at, _text(props, "cart_id"), _money(props, "value", cur))


def _purchase(props: Props, at: int, cur: str) -> Event:
    currency = _text(props, "currency")
    value = _money(props, "value", currency or cur)
    order_id, cart_id = _text(props, "order_id", required=True), _text(props, "cart_id")
    return Purchase(at, order_id, value, currency or cur, cart_id)  # said, not implied


_FORM_ACTIONS: dict[str, FormAction] = {
    "submit": "submit",
    "wishlist": "wishlist",
    "signup": "signup",
}
_MEDIA_ACTIONS: dict[str, MediaAction] = {"complete": "complete", "download": "download"}


def _form(props: Props, at: int, cur: str) -> Event:
    action = _FORM_ACTIONS.get(_text(props, "action") or "submit")
    if action is None:
        raise InvalidTrack(f"form action must be submit, wishlist or signup: {props!r}")
    return Form(at, _text(props, "name", required=True), action)


def _media(props: Props, at: int, cur: str) -> Event:
    action = _MEDIA_ACTIONS.get(_text(props, "action") or "complete")
    if action is None:
        raise InvalidTrack(f"media action must be complete or download: {props!r}")
    return Media(at, _text(props, "asset", required=True), action)


_TYPED: dict[str, Callable[[Props, int, str], Event]] = {
    "cart_add": lambda p, at, cur: _cart_line(CartAdd, p, at, cur),
    "cart_remove": lambda p, at, cur: _cart_line(CartRemove, p, at, cur),
    "checkout_start": _checkout,
    "purchase": _purchase,
    "form": _form,
    "media": _media,
}


def tracked_event(name: str, props: Props, at_ms: int, currency: str) -> Event:
    """The event `track(name, props)` stands for; prices are in `currency` unless props say."""
    typed = _TYPED.get(name)
    if typed is not None:
        return typed(props, at_ms, currency)
    kept = tuple((k, v) for k, v in props.items() if v is not None)
    for key, value in kept:
        if not isinstance(value, str | int | float):
            raise InvalidTrack(f"prop {key!r} must be a string, number or boolean")
    return Custom(at_ms, name, kept)

"""The collector's own events, and their encoding into wire events.

How this works: the signal trackers (scroll, dwell, hover) and `Collector.track` produce frozen
dataclasses that carry their time (`at_ms`, client clock) and plain strings. `encode_event`
turns one into an `events_pb2.Event`, interning every string field into the batch's
`StringTable` (index 0 is the page path the batch was opened on, so it costs nothing);
`dt_ms` is left at 0 for the batcher to fill in. `decode_event` is the inverse, used by tests
and by anything that reads batches back.

Compactness choices that stay inside the contract: a quantity of 1 is sent as 0 (the wire
says 0 means 1), and a string field that names the table's index 0 is not encoded at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from collector.gen.pulsewire.v1 import events_pb2

PropValue = str | int | float | bool
FormAction = Literal["submit", "wishlist", "signup"]
MediaAction = Literal["complete", "download"]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class StringTable:
    """The strings of one batch; `index(s)` interns `s` and returns its position."""

    def __init__(self, first: str = "") -> None:
        self.strings: list[str] = [first]
        self._index: dict[str, int] = {first: 0}

    def index(self, value: str) -> int:
        found = self._index.get(value)
        if found is None:
            found = len(self.strings)
            self.strings.append(value)
            self._index[value] = found
        return found

    @classmethod
    def carrying(cls, kept: list[str], first: str) -> StringTable:
        """A table that starts with `kept` (`first` at 0 when there are none)."""
        if not kept:
            return cls(first)
        table = cls(kept[0])
        for value in kept[1:]:
            table.index(value)
        return table

    def __len__(self) -> int:
        return len(self.strings)

    def truncate(self, length: int) -> None:
        """Forget the strings added after the first `length` (an event that did not fit)."""
        for value in self.strings[length:]:
            del self._index[value]
        del self.strings[length:]


@dataclass(frozen=True, slots=True)
class PageView:
    at_ms: int
    path: str
    title: str = ""
    referrer: str = ""


@dataclass(frozen=True, slots=True)
class Scroll:
    at_ms: int
    path: str
    depth_pct: int


@dataclass(frozen=True, slots=True)
class Dwell:
    at_ms: int
    path: str
    engaged_ms: int


@dataclass(frozen=True, slots=True)
class Hover:
    at_ms: int
    path: str
    target: str
    ms: int


@dataclass(frozen=True, slots=True)
class CartAdd:
    at_ms: int
    sku: str
    qty: int = 1
    price_minor: int = 0
    cart_id: str = ""


@dataclass(frozen=True, slots=True)
class CartRemove:
    at_ms: int
    sku: str
    qty: int = 1
    price_minor: int = 0
    cart_id: str = ""


@dataclass(frozen=True, slots=True)
class CheckoutStart:
    at_ms: int
    cart_id: str = ""
    value_minor: int = 0


@dataclass(frozen=True, slots=True)
class Purchase:
    at_ms: int
    order_id: str
    value_minor: int = 0
    currency: str = ""
    cart_id: str = ""


@dataclass(frozen=True, slots=True)
class Form:
    at_ms: int
    name: str
    action: FormAction = "submit"


@dataclass(frozen=True, slots=True)
class Media:
    at_ms: int
    asset: str
    action: MediaAction = "complete"


@dataclass(frozen=True, slots=True)
class Identify:
    at_ms: int
    user_id: str = ""
    email: str = ""
    signature: str = ""
    traits: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Custom:
    at_ms: int
    name: str
    props: tuple[tuple[str, PropValue], ...] = field(default=())


Event = (
    PageView | Scroll | Dwell | Hover | CartAdd | CartRemove | CheckoutStart | Purchase | Form
    | Media | Identify | Custom
)

_FORM_ACTIONS: dict[str, int] = {"submit": 1, "wishlist": 2, "signup": 3}
_MEDIA_ACTIONS: dict[str, int] = {"complete": 1, "download": 2}
_FORM_NAMES: dict[int, FormAction] = {1: "submit", 2: "wishlist", 3: "signup"}
_MEDIA_NAMES: dict[int, MediaAction] = {1: "complete", 2: "download"}


def _qty(qty: int) -> int:
    return 0 if qty == 1 else qty


def _encode_prop(key: str, value: PropValue, strings: StringTable) -> events_pb2.Prop:
    prop = events_pb2.Prop(key=strings.index(key))
    # bool before int: bool is a subclass of int.
    if isinstance(value, bool):
        prop.flag = value
    elif isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX:
        prop.int = value
    elif isinstance(value, int | float):
        prop.num = float(value)
    else:
        prop.str = strings.index(value)
    return prop


def encode_event(event: Event, strings: StringTable) -> events_pb2.Event:
    """The wire form of `event`, its strings interned into `strings`; dt_ms is left at 0."""
    s = strings.index
    out = events_pb2.Event()
    match event:
        case PageView():
            out.page_view.SetInParent()
            out.page_view.path = s(event.path)
            out.page_view.title = s(event.title)
            out.page_view.referrer = s(event.referrer)
        case Scroll():
            out.scroll.SetInParent()
            out.scroll.path = s(event.path)
            out.scroll.depth_pct = event.depth_pct
        case Dwell():
            out.dwell.SetInParent()
            out.dwell.path = s(event.path)
            out.dwell.engaged_ms = event.engaged_ms
        case Hover():
            out.hover.SetInParent()
            out.hover.path = s(event.path)
            out.hover.target = s(event.target)
            out.hover.ms = event.ms
        case CartAdd() | CartRemove():
            line = out.cart_add if isinstance(event, CartAdd) else out.cart_remove
            line.SetInParent()
            line.sku = s(event.sku)
            line.qty = _qty(event.qty)
            line.price_minor = event.price_minor
            line.cart_id = s(event.cart_id)
        case CheckoutStart():
            out.checkout_start.SetInParent()
            out.checkout_start.cart_id = s(event.cart_id)
            out.checkout_start.value_minor = event.value_minor
        case Purchase():
            out.purchase.SetInParent()
            out.purchase.order_id = s(event.order_id)
            out.purchase.value_minor = event.value_minor
            out.purchase.currency = s(event.currency)
            out.purchase.cart_id = s(event.cart_id)
        case Form():
            out.form.SetInParent()
            out.form.name = s(event.name)
            out.form.action = _FORM_ACTIONS[event.action]  # type: ignore[assignment]
        case Media():
            out.media.SetInParent()
            out.media.asset = s(event.asset)
            out.media.action = _MEDIA_ACTIONS[event.action]  # type: ignore[assignment]
        case Identify():
            out.identify.SetInParent()
            out.identify.user_id = event.user_id
            out.identify.email = event.email
            out.identify.signature = event.signature
            out.identify.traits.update(dict(event.traits))
        case Custom():
            out.custom.SetInParent()
            out.custom.name = s(event.name)
            out.custom.props.extend(_encode_prop(k, v, strings) for k, v in event.props)
    return out


def _decode_prop(prop: events_pb2.Prop, strings: list[str]) -> tuple[str, PropValue]:
    kind = prop.WhichOneof("value")
    value: PropValue
    if kind == "flag":
        value = prop.flag
    elif kind == "int":
        value = prop.int
    elif kind == "num":
        value = prop.num
    else:
        value = strings[prop.str]
    return strings[prop.key], value


def decode_event(wire: events_pb2.Event, strings: list[str], at_ms: int) -> Event:
    """The collector event `wire` stands for, at `at_ms`; raises IndexError on a bad index."""
    kind = wire.WhichOneof("payload")
    if kind == "page_view":
        pv = wire.page_view
        return PageView(at_ms, strings[pv.path], strings[pv.title], strings[pv.referrer])
    if kind == "scroll":
        return Scroll(at_ms, strings[wire.scroll.path], wire.scroll.depth_pct)
    if kind == "dwell":
        return Dwell(at_ms, strings[wire.dwell.path], wire.dwell.engaged_ms)
    if kind == "hover":
        h = wire.hover
        return Hover(at_ms, strings[h.path], strings[h.target], h.ms)
    if kind in ("cart_add", "cart_remove"):
        line = wire.cart_add if kind == "cart_add" else wire.cart_remove
        cls = CartAdd if kind == "cart_add" else CartRemove
        qty = line.qty or 1
        return cls(at_ms, strings[line.sku], qty, line.price_minor, strings[line.cart_id])
    if kind == "checkout_start":
        c = wire.checkout_start
        return CheckoutStart(at_ms, strings[c.cart_id], c.value_minor)
    if kind == "purchase":
        p = wire.purchase
        currency, cart = strings[p.currency], strings[p.cart_id]
        return Purchase(at_ms, strings[p.order_id], p.value_minor, currency, cart)
    if kind == "form":
        return Form(at_ms, strings[wire.form.name], _FORM_NAMES[wire.form.action])
    if kind == "media":
        return Media(at_ms, strings[wire.media.asset], _MEDIA_NAMES[wire.media.action])
    if kind == "identify":
        i = wire.identify
        traits = tuple(sorted(i.traits.items()))  # a map has no order of its own
        return Identify(at_ms, i.user_id, i.email, i.signature, traits)
    if kind == "custom":
        props = tuple(_decode_prop(p, strings) for p in wire.custom.props)
        return Custom(at_ms, strings[wire.custom.name], props)
    raise ValueError(f"event has no collector payload: {kind}")

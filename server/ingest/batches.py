"""From a wire batch to engine events: validation, string table, clock correction, identity.

Everything a collector sends is checked here, and a fault is an InvalidBatch whose message
says where ("events[3].scroll.path: string index 9 is outside the table of 4 strings"), so a
client developer can fix it from the status alone. Event times: the batch's client clock is
corrected by (receipt - sent_at), or, in a batch that gives its age instead, the first event
happened that long before receipt; no event may be later than its receipt. (A resumed batch
comes here in full: server/ingest/resume.py.) Every event time must fall between
2000-01-01 and its receipt, and a time zone must be a name of the zone database's form.

Identity (collector/identity.py): the site's signature vouches for a user id and an email
together, or for an email alone. A batch goes to `u:<user id>` only when the signature binds
that user id, to `e:<email>` only when it vouches for the email; anything not vouched for is a
claim, and the batch stays with its device (`d:<device>`), whose own profile notes the claim,
unverified, never mailed. So nothing unsigned can route a batch to a known user, rewrite their
profile, or change where their mail goes.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from collector.gen.pulsewire.v1 import batch_pb2
from collector.identity import sign_email, vouched
from server.config import IngestSettings, SiteSettings
from server.engine import Event
from server.errors import InvalidBatch, InvalidMessage
from server.mail.message import envelope_address
from server.storage.router import routing_key
from server.storage.shard import Identity

__all__ = ["DecodedBatch", "decode_batch", "sign_email"]

_new_tuple = tuple.__new__  # Event(...) without its Python-level __new__: the per-event hot path
_MAX_DEVICE_ID = 64
_MAX_STRING = 2048
EARLIEST_MS = 946_684_800_000  # 2000-01-01: an event before it is a broken clock
_MAX_EMAIL, _MAX_USER_ID = 254, 256
_MAX_TRAITS, _MAX_TRAIT_KEY, _MAX_TRAIT_VALUE = 50, 64, 512
_MAX_TIMEZONE = 64
_FORM_ACTIONS = {1: "submit", 2: "wishlist", 3: "signup"}
_MEDIA_ACTIONS = {1: "complete", 2: "download"}


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    user_key: str
    device: str
    seq: int  # the dedup number: stream << 32 | seq
    identity: Identity | None
    events: list[Event]


def decode_batch(batch: batch_pb2.Batch, site: SiteSettings, limits: IngestSettings,
                 receipt_ms: int) -> DecodedBatch:
    device, stream, context = batch.device_id, batch.stream, batch.context
    strings = list(batch.strings)
    if not device or len(device) > _MAX_DEVICE_ID:
        raise InvalidBatch(f"device_id: must be 1 to {_MAX_DEVICE_ID} characters")
    if batch.seq < 1:
        raise InvalidBatch("seq: must be 1 or more")
    if stream and (stream >= 2**31 or batch.seq >= 2**32):
        raise InvalidBatch("stream: must be below 2^31, with seq below 2^32")
    if len(batch.events) > limits.max_events_per_batch:
        raise InvalidBatch(f"events: {len(batch.events)} events, at most "
                           f"{limits.max_events_per_batch} per batch")
    for i, text in enumerate(strings):
        if len(text) > _MAX_STRING:
            raise InvalidBatch(f"strings[{i}]: longer than {_MAX_STRING} characters")
    offset = receipt_ms - batch.sent_at_ms if batch.sent_at_ms > 0 else 0
    tz = _timezone(context.timezone) if context.timezone else None
    identity = _identity(batch.identity, site) if batch.HasField("identity") else None
    events: list[Event] = []
    at = batch.base_time_ms
    if at == 0:  # timed by its age: the first event happened age_ms before receipt
        at, offset = receipt_ms - batch.age_ms, 0
    for i, event in enumerate(batch.events):
        at += event.dt_ms
        kind = event.WhichOneof("payload")
        build = _BUILDERS.get(kind) if kind is not None else None
        if build is None:
            raise InvalidBatch(_unusable(i, kind))
        payload = getattr(event, kind)
        try:
            name, props = build(payload, strings)
        except (IndexError, _FieldError) as err:
            raise InvalidBatch(_located(i, kind, payload, strings, err)) from None
        if kind == "purchase" and not props["currency"]:
            props["currency"] = context.currency
        if kind == "identify":  # it names the user for the whole batch
            identity = _identity(payload, site, f"events[{i}].identify")
            props["verified"] = identity is not None and identity.verified
        when = min(at + offset, receipt_ms)
        if when < EARLIEST_MS:
            raise InvalidBatch(f"events[{i}]: its time is before 2000-01-01 (a broken clock)")
        events.append(_new_tuple(Event, (name, when, props, tz)))
    user_id = identity.user_id if identity else None
    email = identity.email if identity and identity.verified else None
    # One dedup number per (stream, seq): a stream's seqs live above bit 32.
    return DecodedBatch(routing_key(device, user_id, email), device, stream << 32 | batch.seq,
                        identity, events)


def _identity(ident: Any, site: SiteSettings, where: str = "identity") -> Identity | None:
    """What the identity vouches for: `user_id` only when the signature binds it, `verified`
    when it vouches for the email (an unverified email is kept as the device's claim)."""
    user_id, email = ident.user_id, ident.email.strip()
    if not email and not user_id:
        return None
    if len(user_id) > _MAX_USER_ID or not user_id.isprintable():
        raise InvalidBatch(f"{where}.user_id: at most {_MAX_USER_ID} printable characters")
    if email and not _email_ok(email):
        raise InvalidBatch(f"{where}.email: not an email address")
    user_ok, email_ok = vouched(site.secret, user_id, email, ident.signature)
    return Identity(email or None, email_ok, user_id if user_ok else None,
                    _traits(getattr(ident, "traits", {}), where))


@lru_cache(maxsize=8192)  # the same few addresses come again and again: parse each once
def _email_ok(email: str) -> bool:
    """An address the dispatcher can send to (its envelope rules, server/mail/message.py), so
    an identity that passes here never becomes a dead letter for its address."""
    if len(email) > _MAX_EMAIL or _EMAIL.fullmatch(email) is None:
        return False
    try:
        envelope_address(email)
    except InvalidMessage:
        return False
    return True


def _traits(traits: Any, where: str) -> dict[str, str]:
    if len(traits) > _MAX_TRAITS:
        raise InvalidBatch(f"{where}.traits: at most {_MAX_TRAITS}")
    for key, value in traits.items():
        if len(key) > _MAX_TRAIT_KEY or len(value) > _MAX_TRAIT_VALUE:
            raise InvalidBatch(f"{where}.traits[{key[:_MAX_TRAIT_KEY]!r}]: keys at most "
                               f"{_MAX_TRAIT_KEY}, values at most {_MAX_TRAIT_VALUE} characters")
    return dict(traits)


@lru_cache(maxsize=1024)
def _timezone(name: str) -> str | None:
    """A zone of the database ("Europe/Berlin"). A name not of that form (letters, digits,
    _ + - and / between parts, never `..`, at most 64 characters) is refused; a well-formed name
    the database does not hold (a browser's "Etc/Unknown", a folder such as "America") is
    dropped: the events keep no zone, and quiet hours use the sequence's."""
    if len(name) > _MAX_TIMEZONE or not _ZONE.fullmatch(name):
        raise InvalidBatch(f"context.timezone: not a time zone name (at most {_MAX_TIMEZONE}"
                           " characters, such as Europe/Berlin)")
    return name if name in _zones() else None


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


# ---- payloads ----------------------------------------------------------------------------
# One builder per kind: plain indexing into the string table, no location strings. When a
# builder fails, `_located` works out which field was at fault, so the fast path pays nothing
# for the clear message the slow path gives.


class _FieldError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _page_view(m: Any, s: list[str]) -> tuple[str, dict[str, Any]]:
    return "page_view", {"path": s[m.path], "title": s[m.title], "referrer": s[m.referrer]}


def _scroll(m: Any, s: list[str]) -> tuple[str, dict[str, Any]]:
    depth = m.depth_pct
    if depth > 100:
        raise _FieldError("depth_pct", f"{depth} is over 100")
    return "scroll", {"path": s[m.path], "depth_pct": depth}


def _dwell(m: Any, s: list[str]) -> tuple[str, dict[str, Any]]:
    return "dwell", {"path": s[m.path], "engaged_ms": m.engaged_ms}


def _hover(m: Any, s: list[str]) -> tuple[str, dict[str, Any]]:
    return "hover", {"path": s[m.path], "target": s[m.target], "ms": m.ms}


def _cart_line(kind: str) -> Callable[[Any, list[str]], tuple[str, dict[str, Any]]]:
    def build(m: Any, s: list[str]) -> tuple[str, dict[str, Any]]:
        return kind, {"sku": s[m.sku], "qty": m.qty or 1, "price_minor": m.price_minor,
                      "cart_id": s[m.cart_id]}
    return build


def _checkout_start(m: Any, s: list[str]) -> tuple[str, dict[str, Any]]:
    return "checkout_start", {"cart_id": s[m.cart_id], "value_minor": m.value_minor}


def _purchase(m: Any, s: list[str]) -> tuple[str, dict[str, Any]]:
    return "purchase", {"order_id": s[m.order_id], "value_minor": m.value_minor,
                        "currency": s[m.currency], "cart_id": s[m.cart_id]}  # "": the context's


def _form(m: Any, s: list[str]) -> tuple[str, dict[str, Any]]:
    return "form", {"name": s[m.name], "action": _FORM_ACTIONS.get(m.action, "")}


def _media(m: Any, s: list[str]) -> tuple[str, dict[str, Any]]:
    return "media", {"asset": s[m.asset], "action": _MEDIA_ACTIONS.get(m.action, "")}


def _identify(_m: Any, _s: list[str]) -> tuple[str, dict[str, Any]]:
    return "identify", {}  # verified is filled in with the site's secret


def _custom(m: Any, s: list[str]) -> tuple[str, dict[str, Any]]:
    name = s[m.name]
    if not name:
        raise _FieldError("name", "empty event name")
    props: dict[str, Any] = {}
    for prop in m.props:
        value = prop.WhichOneof("value")
        if value == "str":
            props[s[prop.key]] = s[prop.str]
        elif value is not None:
            props[s[prop.key]] = getattr(prop, value)
        else:
            s[prop.key]
    return name, props


_BUILDERS: dict[str, Callable[[Any, list[str]], tuple[str, dict[str, Any]]]] = {
    "page_view": _page_view, "scroll": _scroll, "dwell": _dwell, "hover": _hover,
    "cart_add": _cart_line("cart_add"), "cart_remove": _cart_line("cart_remove"),
    "checkout_start": _checkout_start, "purchase": _purchase, "form": _form, "media": _media,
    "identify": _identify, "custom": _custom,
}
# No whitespace, control characters or the specials that would break a header or an envelope.
_EMAIL = re.compile(r'[^@\s\x00-\x1f\x7f"<>()\[\],;:\\]{1,64}'
                    r'@[^@\s\x00-\x1f\x7f"<>()\[\],;:\\]+\.[^@\s\x00-\x1f\x7f"<>()\[\],;:\\]+',
                    re.ASCII)
_ZONE = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9][A-Za-z0-9_+-]*)*")


def _unusable(i: int, kind: str | None) -> str:
    if kind is None:
        return f"events[{i}]: no payload is set"
    if kind in ("email_open", "email_click"):
        return f"events[{i}].{kind}: email feedback comes from the server's own links"
    return f"events[{i}].{kind}: unknown event kind"


def _located(i: int, kind: str, payload: Any, strings: list[str],
             err: IndexError | _FieldError) -> str:
    where = f"events[{i}].{kind}"
    if isinstance(err, _FieldError):
        return f"{where}.{err.field}: {err}"
    fields = [(f.name, getattr(payload, f.name)) for f in payload.DESCRIPTOR.fields
              if f.type == f.TYPE_UINT32 and f.name not in _NOT_STRINGS]
    if kind == "custom":
        for j, prop in enumerate(payload.props):
            fields += [(f"props[{j}].key", prop.key)]
            if prop.WhichOneof("value") == "str":
                fields += [(f"props[{j}].str", prop.str)]
    for field, index in fields:
        if index >= len(strings):
            return (f"{where}.{field}: string index {index} is outside the table of "
                    f"{len(strings)} strings")
    return f"{where}: {err}"


_NOT_STRINGS = frozenset({"qty", "depth_pct", "engaged_ms", "ms", "dt_ms"})



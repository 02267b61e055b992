"""From a wire batch to engine events: validation, string table, clock correction, identity.

Everything a collector sends is checked here, and a fault is an InvalidBatch whose message
says where ("events[3].scroll.path: string index 9 is outside the table of 4 strings"), so a
client developer can fix it from the status alone. Event times: the batch's client clock is
corrected by (receipt - sent_at), or, in a batch that gives its age instead, the first event
happened that long before receipt; no event may be later than its receipt. (A resumed batch
comes here in full: server/ingest/resume.py.) An identify is verified by HMAC-SHA256 of the
lowercased email with the site secret; a wrong or missing signature keeps the identity,
unverified, and such a user is never mailed.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collector.gen.pulsewire.v1 import batch_pb2
from collector.identity import sign_email
from server.config import IngestSettings, SiteSettings
from server.engine import Event
from server.errors import InvalidBatch
from server.storage.router import routing_key
from server.storage.shard import Identity

__all__ = ["DecodedBatch", "decode_batch", "sign_email"]

_new_tuple = tuple.__new__  # Event(...) without its Python-level __new__: the per-event hot path
_MAX_DEVICE_ID = 64
_MAX_STRING = 2048
_FORM_ACTIONS = {1: "submit", 2: "wishlist", 3: "signup"}
_MEDIA_ACTIONS = {1: "complete", 2: "download"}


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    user_key: str
    device: str
    seq: int  # the dedup number: stream << 32 | seq
    identity: Identity | None
    events: list[Event]


def _verified(site: SiteSettings, email: str, signature: str) -> bool:
    return bool(signature) and hmac.compare_digest(sign_email(site.secret, email),
                                                   signature.strip().lower())


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
    tz = context.timezone or None
    events: list[Event] = []
    at = batch.base_time_ms
    if at == 0:  # timed by its age: the first event happened age_ms before receipt
        at, offset = receipt_ms - batch.age_ms, 0
    identify = None
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
        if kind == "identify":
            identify = payload  # it names the user for the whole batch
            props["verified"] = bool(payload.email) and _verified(site, payload.email,
                                                                  payload.signature)
        events.append(_new_tuple(Event, (name, min(at + offset, receipt_ms), props, tz)))
    identity = _identity(identify or batch.identity, site)
    user_id = identity.user_id if identity else None
    email = identity.email if identity else None
    # One dedup number per (stream, seq): a stream's seqs live above bit 32.
    return DecodedBatch(routing_key(device, user_id, email), device, stream << 32 | batch.seq,
                        identity, events)


def _identity(ident: Any, site: SiteSettings) -> Identity | None:
    if not ident.email and not ident.user_id:
        return None
    email = ident.email.strip() or None
    if email is not None and not _EMAIL.fullmatch(email):
        raise InvalidBatch("identity.email: not an email address")
    verified = email is not None and _verified(site, email, ident.signature)
    traits = dict(getattr(ident, "traits", {}))
    return Identity(email, verified, ident.user_id or None, traits)


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
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+", re.ASCII)


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



"""From a wire batch to engine events: validation, string table, clock correction, identity.

Everything a collector sends is checked here, and a fault is an InvalidBatch whose message
says where ("events[3].scroll.path: string index 9 is outside the table of 4 strings"), so a
client developer can fix it from the status alone. Event times: the batch's client clock is
corrected by (receipt - sent_at), and no event may be later than its receipt. An identify is
verified by HMAC-SHA256 of the lowercased email with the site secret; a wrong or missing
signature keeps the identity, unverified, and such a user is never mailed.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from collector.gen.pulsewire.v1 import batch_pb2, events_pb2
from server.config import IngestSettings, SiteSettings
from server.engine import Event
from server.errors import InvalidBatch
from server.storage.router import routing_key
from server.storage.shard import Identity

__all__ = ["DecodedBatch", "decode_batch", "sign_email"]

_MAX_DEVICE_ID = 64
_MAX_STRING = 2048
_FORM_ACTIONS = {1: "submit", 2: "wishlist", 3: "signup"}
_MEDIA_ACTIONS = {1: "complete", 2: "download"}


@dataclass(frozen=True, slots=True)
class DecodedBatch:
    user_key: str
    device: str
    seq: int
    identity: Identity | None
    events: list[Event]


def sign_email(secret: str, email: str) -> str:
    """The signature a site's backend computes for an email it vouches for."""
    return hmac.new(secret.encode(), email.strip().lower().encode(), hashlib.sha256).hexdigest()


def _verified(site: SiteSettings, email: str, signature: str) -> bool:
    return bool(signature) and hmac.compare_digest(sign_email(site.secret, email),
                                                   signature.strip().lower())


def decode_batch(batch: batch_pb2.Batch, site: SiteSettings, limits: IngestSettings,
                 receipt_ms: int) -> DecodedBatch:
    if not batch.device_id or len(batch.device_id) > _MAX_DEVICE_ID:
        raise InvalidBatch(f"device_id: must be 1 to {_MAX_DEVICE_ID} characters")
    if batch.seq < 1:
        raise InvalidBatch("seq: must be 1 or more")
    if len(batch.events) > limits.max_events_per_batch:
        raise InvalidBatch(f"events: {len(batch.events)} events, at most "
                           f"{limits.max_events_per_batch} per batch")
    strings = list(batch.strings)
    for i, text in enumerate(strings):
        if len(text) > _MAX_STRING:
            raise InvalidBatch(f"strings[{i}]: longer than {_MAX_STRING} characters")
    offset = receipt_ms - batch.sent_at_ms if batch.sent_at_ms > 0 else 0
    identity = _identity(batch, site)
    tz = batch.context.timezone or None
    events: list[Event] = []
    at = batch.base_time_ms
    if at == 0:  # no client clock: the last event happened at receipt
        at, offset = receipt_ms - sum(e.dt_ms for e in batch.events), 0
    for i, event in enumerate(batch.events):
        at += event.dt_ms
        kind = event.WhichOneof("payload")
        if kind is None:
            raise InvalidBatch(f"events[{i}]: no payload is set")
        name, props = _payload(kind, getattr(event, kind), strings, f"events[{i}].{kind}", site)
        events.append(Event(name, min(at + offset, receipt_ms), props, tz))
    user_id = identity.user_id if identity else None
    email = identity.email if identity else None
    return DecodedBatch(routing_key(batch.device_id, user_id, email), batch.device_id,
                        batch.seq, identity, events)


def _identity(batch: batch_pb2.Batch, site: SiteSettings) -> Identity | None:
    ident = batch.identity
    for event in batch.events:  # an identify event names the user for the whole batch
        if event.WhichOneof("payload") == "identify":
            ident = event.identify
    if not ident.email and not ident.user_id:
        return None
    email = ident.email.strip() or None
    if email is not None and ("@" not in email or len(email) > 254):
        raise InvalidBatch("identity.email: not an email address")
    verified = email is not None and _verified(site, email, ident.signature)
    traits = dict(getattr(ident, "traits", {}))
    return Identity(email, verified, ident.user_id or None, traits)


def _text(strings: list[str], index: int, where: str) -> str:
    if index >= len(strings):
        raise InvalidBatch(f"{where}: string index {index} is outside the table of "
                           f"{len(strings)} strings")
    return strings[index]


def _payload(kind: str, msg: Any, strings: list[str], where: str,
             site: SiteSettings) -> tuple[str, dict[str, Any]]:
    def text(field: str) -> str:
        return _text(strings, getattr(msg, field), f"{where}.{field}")

    if kind == "page_view":
        return kind, {"path": text("path"), "title": text("title"), "referrer": text("referrer")}
    if kind == "scroll":
        if msg.depth_pct > 100:
            raise InvalidBatch(f"{where}.depth_pct: {msg.depth_pct} is over 100")
        return kind, {"path": text("path"), "depth_pct": msg.depth_pct}
    if kind == "dwell":
        return kind, {"path": text("path"), "engaged_ms": msg.engaged_ms}
    if kind == "hover":
        return kind, {"path": text("path"), "target": text("target"), "ms": msg.ms}
    if kind in ("cart_add", "cart_remove"):
        return kind, {"sku": text("sku"), "qty": msg.qty or 1, "price_minor": msg.price_minor,
                      "cart_id": text("cart_id")}
    if kind == "checkout_start":
        return kind, {"cart_id": text("cart_id"), "value_minor": msg.value_minor}
    if kind == "purchase":
        return kind, {"order_id": text("order_id"), "value_minor": msg.value_minor,
                      "currency": text("currency"), "cart_id": text("cart_id")}
    if kind == "form":
        return kind, {"name": text("name"), "action": _FORM_ACTIONS.get(msg.action, "")}
    if kind == "media":
        return kind, {"asset": text("asset"), "action": _MEDIA_ACTIONS.get(msg.action, "")}
    if kind == "identify":
        verified = bool(msg.email) and _verified(site, msg.email, msg.signature)
        return kind, {"verified": verified}
    if kind in ("email_open", "email_click"):
        raise InvalidBatch(f"{where}: email feedback comes from the server's own links")
    if kind == "custom":
        return _custom(msg, strings, where)
    raise InvalidBatch(f"{where}: unknown event kind")


def _custom(msg: events_pb2.Custom, strings: list[str], where: str) -> tuple[str, dict[str, Any]]:
    name = _text(strings, msg.name, f"{where}.name")
    if not name:
        raise InvalidBatch(f"{where}.name: empty event name")
    props: dict[str, Any] = {}
    for j, prop in enumerate(msg.props):
        key = _text(strings, prop.key, f"{where}.props[{j}].key")
        value = prop.WhichOneof("value")
        if value == "str":
            props[key] = _text(strings, prop.str, f"{where}.props[{j}].str")
        elif value is not None:
            props[key] = getattr(prop, value)
    return name, props

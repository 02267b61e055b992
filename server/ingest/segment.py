"""Segment-spec messages (track, identify, page, screen, alias, group) as pulsewire batches.

Each message becomes one batch of the same wire contract a collector sends, so it takes the
one ingest path (site, rate, identity routing, dedup, shards or the log):
- the device is the message's `anonymousId` (else `u:` and its `userId`); the batch number is a
  hash of its `messageId`, so a retried message is the same batch and applies once;
- its clock is the message's: `timestamp` as the first event's time and `sentAt` as when it was
  sent, so the ingest core corrects the client's clock by (receipt - sentAt) as Segment does;
- `track` events are named by the site's mapping (`[segment.events]`, DEFAULT_EVENTS unless
  set): the e-commerce spec's Product Added becomes cart_add with its sku (`sku` or
  `product_id`), `quantity`, `price` and `cart_id`, Order Completed becomes purchase with its
  `order_id`, `revenue` (else `total`, `value`) and `currency`; any other name stays a custom
  event of that name with its flat properties;
- `page` is a page_view (`properties.path`, else `context.page.path`), `screen` a custom
  `screen_view`, `group` a custom `group` with its `groupId`;
- `identify` (and the identity any message carries: `userId` with `traits.email` or
  `context.traits.email`) names the user. From a backend (the site's secret `server_key`) it is
  trusted: the server signs it as the site would. From a browser (the public key) the email is
  mailable only with the site's signature (`context.traits.signature`, `traits.signature` or
  `integrations.pulsewire.signature`), as for the collector;
- `alias` joins `previousId` (its device) to `userId`, as an identify of that device does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from collector.events import Custom, Event, PageView, StringTable, encode_event
from collector.gen.pulsewire.v1 import batch_pb2
from collector.identity import sign_identity
from collector.track import InvalidTrack, tracked_event

__all__ = ["DEFAULT_EVENTS", "TYPES", "MessageRefused", "exported_events", "message_batch"]

DEFAULT_EVENTS = {
    "Product Viewed": "product_view",
    "Product Added": "cart_add",
    "Product Removed": "cart_remove",
    "Checkout Started": "checkout_start",
    "Order Completed": "purchase",
}
TYPES = frozenset({"track", "identify", "page", "screen", "alias", "group"})
_MAX_ID = 64  # the wire's device id limit; longer ids are hashed to fit
_RENAMES = {"product_id": "sku", "quantity": "qty", "revenue": "value", "total": "value"}


class MessageRefused(ValueError):
    """A message the spec refuses (no user, no event name, a bad timestamp...): why."""


def message_batch(message: Mapping[str, Any], *, site_key: str, site_secret: str,
                  trusted: bool, events: Mapping[str, str]) -> batch_pb2.Batch:
    kind = message.get("type")
    if kind not in TYPES:
        raise MessageRefused(f"type: {kind!r} is not one of {', '.join(sorted(TYPES))}")
    user_id, anonymous = _id(message, "userId"), _id(message, "anonymousId")
    if not user_id and not anonymous:
        raise MessageRefused("userId or anonymousId is required")
    message_id = _id(message, "messageId")
    if not message_id:
        raise MessageRefused("messageId is required")
    at = _instant(message.get("timestamp"), "timestamp") or _instant(
        message.get("originalTimestamp"), "originalTimestamp")
    sent = _instant(message.get("sentAt"), "sentAt")
    device = anonymous or f"u:{user_id}"
    if kind == "alias":
        device = _id(message, "previousId") or device
    batch = batch_pb2.Batch(site_key=site_key, device_id=_fit(device), seq=_seq(message_id),
                            base_time_ms=at or 0, sent_at_ms=sent or 0)
    if not at:
        batch.base_time_ms, batch.sent_at_ms = 0, 0  # no clock given: at receipt
    event = _event(kind, message, at or 0, events)
    if event is not None:
        strings = StringTable()
        batch.events.append(encode_event(event, strings))
        batch.strings.extend(strings.strings)
    identity = _identity(message, user_id, site_secret, trusted)
    if identity is not None:
        batch.identity.CopyFrom(identity)
    return batch


def _event(kind: str, message: Mapping[str, Any], at: int,
           events: Mapping[str, str]) -> Event | None:
    props = _flat(message.get("properties"))
    context = _table(message, "context")
    if kind == "track":
        name = message.get("event")
        if not isinstance(name, str) or not name.strip():
            raise MessageRefused("event: a track needs an event name")
        mapped = events.get(name, name)
        renamed = {_RENAMES.get(k, k): v for k, v in props.items()}
        currency = str(renamed.get("currency") or "")
        try:
            return tracked_event(mapped, renamed, at, currency or "USD")
        except InvalidTrack as err:
            raise MessageRefused(f"properties: {err}") from None
    if kind == "page":
        page = _table(context, "page")
        path = str(props.get("path") or page.get("path") or "/")
        return PageView(at, path[:512], str(props.get("title") or page.get("title") or ""),
                        str(props.get("referrer") or page.get("referrer") or ""))
    if kind == "screen":
        return Custom(at, "screen_view", (("name", str(message.get("name") or "")),
                                          *props.items()))
    if kind == "group":
        return Custom(at, "group", (("group_id", str(message.get("groupId") or "")),
                                    *_flat(message.get("traits")).items()))
    if kind == "identify":
        return None  # the batch's identity says it
    return None  # alias: the batch's identity joins its device to the user


def _identity(message: Mapping[str, Any], user_id: str, secret: str,
              trusted: bool) -> batch_pb2.Identity | None:
    traits, context = _table(message, "traits"), _table(message, "context")
    context_traits = _table(context, "traits")
    email = str(traits.get("email") or context_traits.get("email") or "").strip()
    if not user_id and not email:
        return None
    if trusted:
        signature = sign_identity(secret, user_id, email)
    else:
        ours = _table(_table(message, "integrations"), "pulsewire")
        signature = str(context_traits.get("signature") or traits.get("signature")
                        or ours.get("signature") or "")
    return batch_pb2.Identity(user_id=user_id, email=email, signature=signature)


def _table(holder: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = holder.get(key)
    return value if isinstance(value, dict) else {}


def _flat(value: Any) -> dict[str, Any]:
    """Properties the engine can match: strings, numbers and flags (nested values left out)."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items()
            if isinstance(v, str | int | float | bool) and v is not None}


def _id(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    return value.strip() if isinstance(value, str) else ""


def _fit(device: str) -> str:
    if len(device.encode()) <= _MAX_ID:
        return device
    return "h:" + hashlib.blake2b(device.encode(), digest_size=20).hexdigest()


def _seq(message_id: str) -> int:
    """A batch number from the messageId: 1 to 2^63-1, the same for every retry."""
    digest = hashlib.blake2b(message_id.encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 1) or 1


def _instant(value: Any, field: str) -> int | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MessageRefused(f"{field}: an ISO 8601 date-time, not {value!r}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MessageRefused(f"{field}: {value[:40]!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        raise MessageRefused(f"{field}: {value[:40]!r} has no time zone")
    return int(moment.timestamp() * 1000)


def exported_events(message: Mapping[str, Any],
                    events: Mapping[str, str]) -> tuple[str, list[tuple[str, int, dict[str, Any]]]]:
    """A message of a Segment export as a history's rows: its user (userId, else anonymousId)
    and the engine's events with their times, exactly as the server would apply them."""
    from server.config import IngestSettings, SiteSettings
    from server.ingest.batches import decode_batch

    batch = message_batch(message, site_key="export", site_secret="export", trusted=True,
                          events=events)
    at = batch.base_time_ms or 1
    batch.sent_at_ms = 0  # an export's times are the corrected ones
    decoded = decode_batch(batch, SiteSettings("export", "export"), IngestSettings(), at)
    user = _id(message, "userId") or _id(message, "anonymousId")
    return user, [(e.name, e.at_ms, dict(e.props)) for e in decoded.events]

"""Which shard holds a user: a stable hash of the routing key, fixed when the files are made.

Routing keys, made here and nowhere else: `u:<user id>` once the site names the user, else
`e:<email>` (lowercased) when only an email is known, else `d:<device id>`; the feedback of a
message (its opens and clicks) is deduplicated under the device `m:<message key>`. The hash is
blake2b, not Python's `hash`, so every process and every restart agrees. Changing the shard
count needs an offline reshard.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "device_key",
    "device_of",
    "feedback_device",
    "is_routing_key",
    "keys_for",
    "routing_key",
    "shard_of",
]


def shard_of(key: str, shards: int) -> int:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def routing_key(device: str, user_id: str | None, email: str | None) -> str:
    if user_id:
        return f"u:{user_id}"
    if email:
        return f"e:{email.strip().lower()}"
    return f"d:{device}"


def device_key(device: str) -> str:
    """The routing key of an anonymous device's profile."""
    return f"d:{device}"


def device_of(key: str) -> str | None:
    """The device id a device's routing key names; None for any other key."""
    return key[2:] if key.startswith("d:") else None


def feedback_device(message_key: str) -> str:
    """The dedup device of a message's opens and clicks (a pixel fetched ten times counts
    once)."""
    return f"m:{message_key}"


def is_routing_key(text: str) -> bool:
    return text[:2] in ("u:", "e:", "d:")


def keys_for(who: str) -> list[str]:
    """The routing keys an operator's `who` may name: itself when it is one, else a user id
    or a device id."""
    return [who] if is_routing_key(who) else [f"u:{who}", device_key(who)]

"""Which shard holds a user: a stable hash of the routing key, fixed when the files are made.

Routing keys: `u:<user id>` once the site names the user, else `e:<email>` (lowercased) when
only an email is known, else `d:<device id>`. The hash is blake2b, not Python's `hash`, so every
process and every restart agrees. Changing the shard count needs an offline reshard.
"""

from __future__ import annotations

import hashlib

__all__ = ["routing_key", "shard_of"]


def shard_of(key: str, shards: int) -> int:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def routing_key(device: str, user_id: str | None, email: str | None) -> str:
    if user_id:
        return f"u:{user_id}"
    if email:
        return f"e:{email.strip().lower()}"
    return f"d:{device}"

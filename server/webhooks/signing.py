"""Standard Webhooks signatures (https://www.standardwebhooks.com): a receiver verifies a
delivery with the specification's libraries.

A secret is written `whsec_<base64 of 24 to 64 random bytes>`. A delivery carries
`webhook-id` (the same for every attempt of one delivery), `webhook-timestamp` (seconds since
the epoch, of this attempt) and `webhook-signature`: `v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`, one per secret, space-separated, so an endpoint can rotate its secret
with both in force.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PREFIX", "SignedHeaders", "new_secret", "parse_secret", "signed_headers"]

PREFIX = "whsec_"
_MIN_KEY, _MAX_KEY = 24, 64


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def parse_secret(text: str) -> bytes:
    """The key of a `whsec_...` secret; ValueError saying what is wrong (never the secret)."""
    if not text.startswith(PREFIX):
        raise ValueError(f"a webhook secret starts with {PREFIX!r}")
    try:
        key = base64.b64decode(text[len(PREFIX):], validate=True)
    except ValueError:
        raise ValueError("a webhook secret is whsec_ and base64") from None
    if not _MIN_KEY <= len(key) <= _MAX_KEY:
        raise ValueError(f"a webhook secret's key is {_MIN_KEY} to {_MAX_KEY} bytes, not "
                         f"{len(key)}")
    return key


@dataclass(frozen=True, slots=True)
class SignedHeaders:
    webhook_id: str
    timestamp_s: int
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {"webhook-id": self.webhook_id, "webhook-timestamp": str(self.timestamp_s),
                "webhook-signature": self.signature}


def signed_headers(keys: Sequence[bytes], webhook_id: str, timestamp_s: int,
                   body: bytes) -> SignedHeaders:
    """The headers of one attempt: `body` signed with every key."""
    if not keys:
        raise ValueError("a webhook needs at least one secret")
    message = f"{webhook_id}.{timestamp_s}.".encode() + body
    signatures = " ".join(
        "v1," + base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
        for key in keys)
    return SignedHeaders(webhook_id, timestamp_s, signatures)

"""How a site vouches for who a visitor is: an HMAC-SHA256 with the site secret, in hex.

- `sign_identity(secret, user_id, email)`: the user id and the lowercased email, on two lines
  (either may be empty). It binds the two: a batch signed so is routed to that user id, and
  the email is theirs.
- `sign_email(secret, email)`: the lowercased email alone (the first form, still accepted): it
  vouches for the email, not for any user id sent beside it.

Computed on the site's backend (never in a browser: the secret must stay there); the server
recomputes it (`vouched`) to decide what of an identity is verified. What is not vouched for is
a claim: it never routes a batch to a known user, never changes their profile, and is never
mailed.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["sign_email", "sign_identity", "vouched"]


def _mac(site_secret: str, message: str) -> str:
    return hmac.new(site_secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign_email(site_secret: str, email: str) -> str:
    return _mac(site_secret, email.strip().lower())


def sign_identity(site_secret: str, user_id: str = "", email: str = "") -> str:
    """The signature that binds `user_id` and `email` (with no user id: `sign_email`'s)."""
    if not user_id:
        return sign_email(site_secret, email)
    return _mac(site_secret, f"{user_id}\n{email.strip().lower()}")


def vouched(site_secret: str, user_id: str, email: str, signature: str) -> tuple[bool, bool]:
    """(user id verified, email verified) for an identity and its signature."""
    given = signature.strip().lower().encode()  # bytes: any text compares, in constant time
    if not given:
        return False, False
    if user_id and hmac.compare_digest(sign_identity(site_secret, user_id, email).encode(),
                                       given):
        return True, bool(email)
    return False, bool(email) and hmac.compare_digest(sign_email(site_secret, email).encode(),
                                                      given)

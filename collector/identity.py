"""How a site vouches for an email: hex(HMAC-SHA256(key=site secret, msg=lowercased email)).

Computed on the site's backend (never in a browser: the secret must stay there); the server
recomputes it to decide whether an identity is verified and may be mailed.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["sign_email"]


def sign_email(site_secret: str, email: str) -> str:
    return hmac.new(site_secret.encode(), email.strip().lower().encode(),
                    hashlib.sha256).hexdigest()

"""Who may use the console: passwords, sessions and CSRF tokens.

- Passwords are stored as scrypt hashes (`scrypt$N$r$p$salt$hash`, base64), made by
  `pulsewire console-password`; checking one takes the same time whether the name exists or not.
- A session is a cookie (`pw_console`): base64 of {user, expiry, nonce} and an HMAC-SHA256 of it
  under a key derived from the server's link secret; HttpOnly, SameSite=Strict, Path=/console,
  Secure behind https. Nothing is kept on the server, so a restart keeps people logged in and
  the distributed mode needs nothing shared; a session ends at its expiry (or at logout, by
  the browser dropping the cookie).
- Every form carries a CSRF token: the HMAC of the session's nonce (before login: of a nonce in
  a short-lived cookie of its own), compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["COOKIE", "LOGIN_COOKIE", "Session", "Sessions", "hash_password", "verify_password"]

COOKIE = "pw_console"
LOGIN_COOKIE = "pw_console_login"
_SCRYPT = (2**14, 8, 1)
_DUMMY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 43 + "="


def hash_password(password: str) -> str:
    n, r, p = _SCRYPT
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, hashed: str | None) -> bool:
    """Whether `password` matches; a missing account is checked against a dummy hash, so the
    answer takes as long either way."""
    try:
        _, n, r, p, salt, digest = (hashed or _DUMMY).split("$")
        found = hashlib.scrypt(password.encode(), salt=base64.urlsafe_b64decode(salt), n=int(n),
                               r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hashed is not None and hmac.compare_digest(found, base64.urlsafe_b64decode(digest))


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    nonce: str
    expires_ms: int


class Sessions:
    def __init__(self, secret: bytes, hours: float, now_ms: Callable[[], int]) -> None:
        self._key = hmac.new(secret, b"pulsewire console session", hashlib.sha256).digest()
        self._life_ms = int(hours * 3_600_000)
        self._now_ms = now_ms

    def issue(self, user: str) -> tuple[str, Session]:
        """A new session's cookie value, and the session."""
        session = Session(user, secrets.token_urlsafe(16), self._now_ms() + self._life_ms)
        body = _b64(json.dumps([session.user, session.nonce, session.expires_ms]).encode())
        return f"{body}.{self._sign(body)}", session

    def read(self, cookie: str | None) -> Session | None:
        if not cookie or "." not in cookie:
            return None
        body, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            user, nonce, expires = json.loads(base64.urlsafe_b64decode(body))
        except (ValueError, TypeError):
            return None
        if not isinstance(expires, int) or expires <= self._now_ms():
            return None
        return Session(str(user), str(nonce), expires)

    def csrf(self, nonce: str) -> str:
        return self._sign(f"csrf:{nonce}")

    def csrf_ok(self, nonce: str | None, token: object) -> bool:
        return bool(nonce) and isinstance(token, str) and hmac.compare_digest(
            token, self.csrf(str(nonce)))

    def _sign(self, text: str) -> str:
        return _b64(hmac.new(self._key, text.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()

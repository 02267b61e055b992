"""Signed tokens for tracking and unsubscribe links.

A token is base64url (no padding) of: one version byte, the payload, and a 16-byte tag.
The payload is encoded compactly and canonically: its keys in sorted order, each key and value
as UTF-8 behind a varint length. The tag is HMAC-SHA256(secret, kind + payload) cut to 128 bits,
so a token made for one kind ("open", "click", "unsub") never verifies as another. A token
carries the payload in the clear and nothing else: no secret, no expiry, no padding.

Verification is strict on purpose: the text must be canonical base64url (the spare low bits of
the last character must be zero), the tag is compared in constant time before anything is
decoded, and the payload must decode to exactly the canonical bytes it was made from. So any
change to a token, even one that base64 decoders forgive, is refused with `InvalidToken`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping

from server.errors import InvalidToken

__all__ = ["KIND_CLICK", "KIND_OPEN", "KIND_UNSUBSCRIBE", "InvalidToken", "LinkSigner"]

KIND_OPEN = "open"  # payload: user, message
KIND_CLICK = "click"  # payload: user, message, url
KIND_UNSUBSCRIBE = "unsub"  # payload: user, email, message

_VERSION = 1
_TAG_BYTES = 16  # 128-bit tag
_MIN_SECRET_BYTES = 16
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class LinkSigner:
    """Makes and checks the tokens in tracking and unsubscribe links with one site secret."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < _MIN_SECRET_BYTES:
            raise ValueError(f"link secret must be at least {_MIN_SECRET_BYTES} bytes")
        self._secret = secret

    def __repr__(self) -> str:
        return "LinkSigner(<secret>)"

    def sign(self, kind: str, payload: Mapping[str, str]) -> str:
        body = bytes([_VERSION]) + _encode(payload)
        return _b64encode(body + self._tag(kind, body))

    def verify(self, kind: str, token: str) -> dict[str, str]:
        """The payload `sign(kind, ...)` made this token from; else `InvalidToken`."""
        raw = _b64decode(token)
        if len(raw) < 1 + _TAG_BYTES:
            raise InvalidToken("token too short")
        body, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
        if not hmac.compare_digest(tag, self._tag(kind, body)):
            raise InvalidToken("token signature does not match")
        if body[0] != _VERSION:
            raise InvalidToken(f"unknown token version {body[0]}")
        return _decode(body[1:])

    def _tag(self, kind: str, body: bytes) -> bytes:
        kind_bytes = kind.encode("utf-8")
        message = _varint(len(kind_bytes)) + kind_bytes + body
        return hmac.new(self._secret, message, hashlib.sha256).digest()[:_TAG_BYTES]


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(token: str) -> bytes:
    if not isinstance(token, str) or not _BASE64URL.fullmatch(token) or len(token) % 4 == 1:
        raise InvalidToken("not a token")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("not a token") from None
    if _b64encode(raw) != token:  # spare bits set: another spelling of the same bytes
        raise InvalidToken("not a canonical token")
    return raw


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _encode(payload: Mapping[str, str]) -> bytes:
    out = bytearray()
    for key in sorted(payload):
        for text in (key, payload[key]):
            if not isinstance(text, str):
                raise TypeError(f"token payload must map str to str, got {text!r}")
            data = text.encode("utf-8")
            out += _varint(len(data)) + data
    return bytes(out)


def _decode(data: bytes) -> dict[str, str]:
    fields: list[str] = []
    pos = 0
    try:
        while pos < len(data):
            length, shift = 0, 0
            while True:
                byte = data[pos]
                pos += 1
                length |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
            if pos + length > len(data):
                raise InvalidToken("token payload truncated")
            fields.append(data[pos:pos + length].decode("utf-8"))
            pos += length
    except (IndexError, UnicodeDecodeError):
        raise InvalidToken("token payload malformed") from None
    if len(fields) % 2:
        raise InvalidToken("token payload malformed")
    payload = dict(zip(fields[::2], fields[1::2], strict=True))
    if _encode(payload) != data:  # duplicate or unsorted keys, or non-minimal lengths
        raise InvalidToken("token payload not canonical")
    return payload

"""The bytes of one email: a multipart/alternative MIME message, optionally DKIM-signed.

The message is written directly rather than through the stdlib `email` object model, which
cost about 3 ms per message, more than rendering it: every line ends in CRLF, a non-ASCII
subject or display name is RFC 2047 encoded (email.header / email.utils), and both parts are
UTF-8 in quoted-printable (quopri), which keeps body lines under 78 characters. The boundary
is derived from the message key, so the same send makes the same bytes. The text part comes
before the HTML part: clients show the last alternative they understand.

The Message-ID is derived from the send's message key, so rendering the same outbox row again
(after a crash between the SMTP server's acceptance and our "sent" mark) makes the same
Message-ID, and receivers that deduplicate on it see one email. Every message carries
List-Unsubscribe with List-Unsubscribe-Post: List-Unsubscribe=One-Click (RFC 8058).

DKIM (dkimpy) signs rsa-sha256 with relaxed/relaxed canonicalization over the headers a
receiver shows or acts on; the signature header is put on top.
"""

from __future__ import annotations

import hashlib
import quopri
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path

import dkim as dkimpy
from dkim.crypto import parse_pem_private_key

from server.errors import InvalidMessage
from server.mail.render import RenderedEmail

__all__ = ["DKIM_HEADERS", "DkimSigner", "InvalidMessage", "build_message", "message_id_for"]

# Headers are written unfolded (RFC 5322 allows lines up to 998 characters): folding a long
# unsubscribe URL into encoded words would make it unreadable as a URL.

DKIM_HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
                "List-Unsubscribe", "List-Unsubscribe-Post")


class DkimSigner:
    """Signs messages for `domain` with the key published at `{selector}._domainkey.{domain}`."""

    __slots__ = ("_domain", "_key", "_selector")

    def __init__(self, selector: str, domain: str, private_key_pem: bytes) -> None:
        key = private_key_pem.replace(b"\r\n", b"\n")
        try:
            parse_pem_private_key(key)
        except Exception as err:
            raise InvalidMessage(f"DKIM key for {domain}: not a PEM RSA private key") from err
        self._selector = selector
        self._domain = domain
        self._key = key

    def __repr__(self) -> str:
        return f"DkimSigner({self._selector!r}, {self._domain!r}, <key>)"

    @classmethod
    def from_files(cls, selector: str, key_file: Path | str, sender: str) -> DkimSigner:
        """A signer for the sender address's domain with the PEM key in `key_file`."""
        try:
            pem = Path(key_file).read_bytes()
        except OSError as err:
            raise InvalidMessage(f"{key_file}: cannot read DKIM key: {err.strerror}") from None
        return cls(selector, _domain_of(sender), pem)

    def sign(self, message: bytes) -> bytes:
        """`message` with a DKIM-Signature header on top."""
        try:
            header = dkimpy.sign(
                message, self._selector.encode("ascii"), self._domain.encode("ascii"), self._key,
                canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=b"rsa-sha256",
                include_headers=[h.lower().encode("ascii") for h in DKIM_HEADERS],
            )
        except dkimpy.DKIMException as err:
            raise InvalidMessage(f"DKIM signing failed: {err}") from err
        assert isinstance(header, bytes)
        return header + message


def message_id_for(message_key: str, sender: str, domain: str | None = None) -> str:
    """`<{sha256(message_key)[:32]}@{domain}>`, the domain being the sender's by default."""
    digest = hashlib.sha256(message_key.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{domain or _domain_of(sender)}>"


def build_message(rendered: RenderedEmail, *, sender: str, to: str, message_key: str,
                  unsubscribe_url: str, now_ms: int, domain: str | None = None,
                  dkim: DkimSigner | None = None) -> bytes:
    """The wire bytes (CRLF lines) of `rendered` from `sender` to `to`, dated `now_ms`."""
    _check_address("to", to)
    _check_address("sender", sender)
    if any(c in unsubscribe_url for c in "\r\n<> "):
        raise InvalidMessage(f"cannot build message {message_key!r}: bad unsubscribe URL")
    boundary = "=_pw_" + hashlib.sha256(message_key.encode("utf-8")).hexdigest()[:24]
    headers = [
        ("From", _address(sender)),
        ("To", _address(to)),
        ("Subject", _header_text(" ".join(rendered.subject.split()))),
        ("Date", format_datetime(datetime.fromtimestamp(now_ms / 1000, UTC))),
        ("Message-ID", message_id_for(message_key, sender, domain)),
        ("List-Unsubscribe", f"<{unsubscribe_url}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers).encode("ascii")
    data = b"".join((
        head, b"\r\n",
        _part(boundary, "text/plain", rendered.text),
        _part(boundary, "text/html", rendered.html),
        f"--{boundary}--\r\n".encode("ascii"),
    ))
    return dkim.sign(data) if dkim is not None else data


def _part(boundary: str, content_type: str, body: str) -> bytes:
    """One part; its text ends in a line break, and the CRLF after that belongs to the next
    boundary line (RFC 2046), so the text reads back exactly."""
    text = _lines(body)
    if not text.endswith("\n"):
        text += "\n"
    encoded = quopri.encodestring(text.encode("utf-8")).replace(b"\n", b"\r\n")
    return (f"--{boundary}\r\nContent-Type: {content_type}; charset=\"utf-8\"\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode("ascii") + \
        encoded + b"\r\n"


def _header_text(text: str) -> str:
    """ASCII text as it is; anything else as RFC 2047 encoded words."""
    if text.isascii() and not any(c in text for c in "\r\n"):
        return text
    return Header(text.replace("\r", " ").replace("\n", " "), "utf-8").encode()


def _address(address: str) -> str:
    name, addr = parseaddr(address)
    return formataddr((name, addr), charset="utf-8")


def _lines(text: str) -> str:
    """One line ending throughout; the generator writes each as CRLF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _domain_of(address: str) -> str:
    _, addr = parseaddr(address)
    domain = addr.rpartition("@")[2]
    if not domain:
        raise InvalidMessage(f"{address!r} has no domain")
    return domain.lower()


def _check_address(role: str, address: str) -> None:
    _, addr = parseaddr(address)
    local, at, domain = addr.rpartition("@")
    if not (local and at and domain) or any(c in address for c in "\r\n"):
        raise InvalidMessage(f"{role}: {address!r} is not an email address")

"""The bytes of one email: a multipart/alternative MIME message, optionally DKIM-signed.

The message is written directly rather than through the stdlib `email` object model, which
cost about 3 ms per message, more than rendering it: every line ends in CRLF, a non-ASCII
subject or display name is RFC 2047 encoded (email.header / email.utils), and both parts are
UTF-8 in quoted-printable (quopri), which keeps body lines under 78 characters. The boundary
is derived from the message key, so the same send makes the same bytes. The text part comes
before the HTML part: clients show the last alternative they understand.

Addresses are checked as RFC 5321 mailboxes before anything is built (`envelope_address`):
no control, format or line-break character of any script, a local part of at most 64 octets,
a domain of at most 255, one plain `local@domain` (or `Name <local@domain>`), so what goes on
the envelope and in To is the address given (never what `parseaddr` makes of a comment or a
stray quote), and a bad one is an `InvalidMessage` naming why. A non-ASCII address (RFC 6531)
is written in UTF-8 (RFC 6532): such a message can only go over SMTPUTF8 (smtp.py).

Headers are folded at 78 octets where they have spaces (RFC 5322); no line may pass 998. A
subject that cannot fold (a long word) becomes RFC 2047 encoded words, which can break
anywhere. An unsubscribe URL stays whole when it fits on one line, else is broken inside its
angle brackets, where RFC 2369 says whitespace is ignored: encoded words would make it
unreadable as a URL. A header that cannot be made valid is an `InvalidMessage`.

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
import re
import unicodedata
from datetime import UTC, datetime
from email.header import Header
from email.utils import format_datetime, parseaddr
from pathlib import Path

import dkim as dkimpy
from dkim.crypto import parse_pem_private_key

from server.errors import InvalidMessage
from server.mail.render import RenderedEmail

__all__ = ["DKIM_HEADERS", "DkimSigner", "InvalidMessage", "build_message", "envelope_address",
           "message_id_for"]

FOLD_AT = 78  # RFC 5322: a line SHOULD be at most 78 octets ...
MAX_LINE = 998  # ... and MUST be at most 998
MAX_URL = 8_000  # longer than common HTTP servers take in a request line: the link cannot work

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


def envelope_address(address: str, role: str = "to") -> str:
    """The mailbox (`local@domain`) of `address` (that, or `Name <local@domain>`), checked for
    SMTP and the headers; else `InvalidMessage` saying what is wrong, for a dead letter."""
    shown = _shown(address)
    if any(_is_control_or_space(c) for c in address if c != " "):
        raise InvalidMessage(f"{role}: {shown} contains a control or line-break character")
    addr = parseaddr(address)[1]
    text = address.strip()
    if not addr or (text != addr and not text.endswith(f"<{addr}>")):
        raise InvalidMessage(f"{role}: {shown} is not one email address")
    if problem := _mailbox_problem(addr):
        raise InvalidMessage(f"{role}: {shown} {problem}")
    return addr


def build_message(rendered: RenderedEmail, *, sender: str, to: str, message_key: str,
                  unsubscribe_url: str, now_ms: int, domain: str | None = None,
                  dkim: DkimSigner | None = None) -> bytes:
    """The wire bytes (CRLF lines) of `rendered` from `sender` to `to`, dated `now_ms`."""
    if any(c in unsubscribe_url for c in "\r\n<> ") or not unsubscribe_url.isascii():
        raise InvalidMessage(f"cannot build message {message_key!r}: bad unsubscribe URL")
    if len(unsubscribe_url) > MAX_URL:
        raise InvalidMessage(f"the unsubscribe URL is {len(unsubscribe_url)} characters, "
                             f"over {MAX_URL}: no web server would take it")
    boundary = "=_pw_" + hashlib.sha256(message_key.encode("utf-8")).hexdigest()[:24]
    headers = [
        _fold("From", _address_words("sender", sender)),
        _fold("To", _address_words("to", to)),
        _subject(" ".join(rendered.subject.split())),
        _fold("Date", [format_datetime(datetime.fromtimestamp(now_ms / 1000, UTC))]),
        _fold("Message-ID", [message_id_for(message_key, sender, domain)]),
        _unsubscribe(unsubscribe_url),
        _fold("List-Unsubscribe-Post", ["List-Unsubscribe=One-Click"]),
        _fold("MIME-Version", ["1.0"]),
        _fold("Content-Type", ["multipart/alternative;", f'boundary="{boundary}"']),
    ]
    data = b"".join((
        *headers, b"\r\n",
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


# ---- headers ------------------------------------------------------------------------------

def _fold(name: str, words: list[str]) -> bytes:
    """`name: words` with CRLF + space between words where a line would pass FOLD_AT; a word
    longer than that gets a line of its own. `InvalidMessage` if a line passes MAX_LINE."""
    lines = [f"{name}:"]
    for i, word in enumerate(words):
        if i and len((lines[-1] + " " + word).encode("utf-8")) > FOLD_AT:
            lines.append("")
        lines[-1] += " " + word
    if any(len(line.encode("utf-8")) > MAX_LINE for line in lines):
        raise InvalidMessage(f"the {name} header has a word too long for a {MAX_LINE}-octet line")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _subject(text: str) -> bytes:
    """Plain words when they are printable ASCII and fit; else RFC 2047 encoded words."""
    if all(" " <= c <= "~" for c in text) and "=?" not in text:
        words = text.split(" ")
        if all(len(w) <= MAX_LINE - len("Subject: ") for w in words):
            return _fold("Subject", words)
    encoded = Header(text, "utf-8", header_name="Subject").encode(maxlinelen=FOLD_AT)
    return _fold("Subject", encoded.split())


def _unsubscribe(url: str) -> bytes:
    """`<url>`, broken inside the brackets only when it cannot fit one line (RFC 2369, 2:
    whitespace inside the angle brackets is to be ignored)."""
    name, whole = "List-Unsubscribe", f"<{url}>"
    if len(name) + 2 + len(whole) <= MAX_LINE:
        return _fold(name, [whole])
    room = FOLD_AT - 1
    first = FOLD_AT - len(name) - 2
    pieces = [whole[:first]] + [whole[i:i + room] for i in range(first, len(whole), room)]
    return _fold(name, pieces)


def _address_words(role: str, address: str) -> list[str]:
    """The words of an address header: the display name, if any, then `<local@domain>`."""
    addr = envelope_address(address, role)
    name = " ".join(parseaddr(address)[0].split())
    if not name:
        return [addr]
    if all(" " <= c <= "~" for c in name) and "=?" not in name:
        if _ATOMS.fullmatch(name):
            phrase = name
        else:
            phrase = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return [*phrase.split(" "), f"<{addr}>"]
    encoded = Header(name, "utf-8").encode(maxlinelen=FOLD_AT)
    return [*encoded.split(), f"<{addr}>"]


# ---- addresses ----------------------------------------------------------------------------
# RFC 5321 Mailbox: a dot-string or quoted-string local part, then a domain or an address
# literal; RFC 6531 lets both carry UTF-8 (checked for control and space characters apart).

_U = "\u0080-\U0010ffff"
_ATOM = rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~{_U}-]+"
_LOCAL = re.compile(rf'{_ATOM}(?:\.{_ATOM})*|"(?:[ !#-\[\]-~{_U}]|\\[ -~])*"')
_LABEL = re.compile(rf"[A-Za-z0-9_{_U}](?:[A-Za-z0-9_{_U}-]*[A-Za-z0-9_{_U}])?")
_LITERAL = re.compile(r"\[[!-Z^-~]+\]")
_ATOMS = re.compile(rf"{_ATOM}(?: {_ATOM})*")


def _mailbox_problem(addr: str) -> str | None:
    """Why `addr` is not a mailbox SMTP can carry; None when it is one."""
    local, at, domain = addr.rpartition("@")
    if not (local and at and domain) or not _LOCAL.fullmatch(local):
        return "is not an email address (local@domain)"
    if not (_LITERAL.fullmatch(domain)
            or all(_LABEL.fullmatch(label) for label in domain.split("."))):
        return "has no valid domain"
    if len(local.encode("utf-8")) > 64:
        return "has a local part over 64 octets (RFC 5321)"
    if len(domain.encode("utf-8")) > 255 or any(
            len(label.encode("utf-8")) > 63 for label in domain.split(".")):
        return "has a domain over 255 octets, or a label over 63 (RFC 5321)"
    if len(addr.encode("utf-8")) > 254:
        return "is over 254 octets (RFC 5321)"
    return None


def _is_control_or_space(char: str) -> bool:
    """Control, format (bidi overrides, ...) and space characters of any script; a joiner
    (ZWNJ, ZWJ), which some scripts spell names with, is let through."""
    if char in "\u200c\u200d":
        return False
    return unicodedata.category(char)[0] in "CZ"


def _shown(address: str) -> str:
    """The address as an error message shows it: escaped, and cut when long."""
    return repr(address) if len(address) <= 80 else repr(address[:80]) + "..."


def _lines(text: str) -> str:
    """One line ending throughout; the generator writes each as CRLF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _domain_of(address: str) -> str:
    _, addr = parseaddr(address)
    domain = addr.rpartition("@")[2]
    if not domain:
        raise InvalidMessage(f"{address!r} has no domain")
    return domain.lower()

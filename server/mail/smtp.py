"""Sending one message over SMTP, on a connection kept open between sends.

`SmtpSender.send` returns a `Delivery` instead of raising: DELIVERED, TRANSIENT (a 4xx reply,
a refused or dropped connection, a timeout: try again later) or PERMANENT (a 5xx reply to this
message: don't). The caller owns retries and backoff; the one retry made here is for a reused
connection that turned out dead (the server closed it while idle): the send is tried once
more on a fresh connection before it is reported as transient.

A 5xx before the transaction (greeting, EHLO, STARTTLS, AUTH) says the server refuses us, not
this message, so it is reported as TRANSIENT: nothing is dropped while an operator fixes the
setup. A recipient's hard bounce is PERMANENT at stage "rcpt" (`Delivery.bounced`).

The transaction (MAIL, RCPT, DATA) is driven step by step here rather than by `sendmail`, which
leaves the envelope open when it raises on our side after MAIL was accepted (a recipient it
cannot encode): the next send on the connection was then refused ("503 nested MAIL"). After
any failure in a transaction (a refusal, or an error on our side) the connection is reset with
RSET, and dropped if RSET fails. An address that cannot go on a command line as it is (a
control character, or text that `parseaddr` would turn into another address) is PERMANENT
before MAIL.
A non-ASCII address goes with SMTPUTF8 (RFC 6531) when the server's EHLO offers it, and is
PERMANENT without it; a message with 8-bit bytes is sent as BODY=8BITMIME when offered.

Sends are serialized on the one connection by a lock. The password is kept out of `repr`,
logs and every Delivery message.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from enum import StrEnum

import aiosmtplib
from aiosmtplib.email import quote_address

__all__ = ["NO_SMTPUTF8", "Delivery", "DeliveryStatus", "SmtpSender"]

NO_SMTPUTF8 = "the server does not offer SMTPUTF8 for a non-ASCII address"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # what aiosmtplib refuses in a command's argument


class DeliveryStatus(StrEnum):
    DELIVERED = "delivered"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one send. `code` is the SMTP reply code, 0 when there was none (a
    connection error or timeout); `stage` is where it ended: connect, auth, mail, rcpt, data."""

    status: DeliveryStatus
    code: int
    message: str
    stage: str

    @property
    def delivered(self) -> bool:
        return self.status is DeliveryStatus.DELIVERED

    @property
    def bounced(self) -> bool:
        """The recipient's server refused the address for good: suppress it."""
        return self.status is DeliveryStatus.PERMANENT and self.stage == "rcpt"


class _ConnectionDead(Exception):
    """The connection failed under a send; `delivery` is what to report if it stays dead."""

    def __init__(self, delivery: Delivery) -> None:
        super().__init__(delivery.message)
        self.delivery = delivery


class SmtpSender:
    """An SMTP client for one relay, reusing its connection across sends."""

    def __init__(self, host: str, port: int, *, username: str = "", password: str = "",
                 starttls: bool = False, timeout_s: float = 10.0) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._starttls = starttls
        self._timeout_s = timeout_s
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        user = f", username={self._username!r}" if self._username else ""
        return f"SmtpSender({self._host!r}, {self._port}{user}, starttls={self._starttls})"

    async def send(self, sender_address: str, recipient: str, message: bytes) -> Delivery:
        """Sends `message` (CRLF lines) with envelope `sender_address` -> `recipient`."""
        async with self._lock:
            reused = self._client is not None and self._client.is_connected
            try:
                return await self._attempt(sender_address, recipient, message)
            except _ConnectionDead as dead:
                await self._discard()
                if not reused:
                    return dead.delivery
            try:
                return await self._attempt(sender_address, recipient, message)
            except _ConnectionDead as dead:
                await self._discard()
                return dead.delivery

    async def close(self) -> None:
        """Says QUIT and closes the connection, if one is open."""
        async with self._lock:
            client, self._client = self._client, None
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()

    async def _attempt(self, sender_address: str, recipient: str, message: bytes) -> Delivery:
        """One try; raises `_ConnectionDead` when the connection failed under us."""
        client = self._client
        if client is None or not client.is_connected:
            connected = await self._connect()
            if isinstance(connected, Delivery):
                return connected
            client = connected
        utf8 = not (sender_address.isascii() and recipient.isascii())
        for address in (sender_address, recipient):  # checked before MAIL, not halfway
            if problem := _unsendable(address):
                return _permanent(problem, "mail")
        if utf8 and not client.supports_extension("smtputf8"):
            return _permanent(NO_SMTPUTF8, "mail")
        options = ["SMTPUTF8"] if utf8 else []
        if not message.isascii() and client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        if client.supports_extension("size"):
            options.append(f"SIZE={len(message)}")
        try:
            return await self._transaction(client, sender_address, recipient, message,
                                           options, "utf-8" if utf8 else "ascii")
        except aiosmtplib.SMTPTimeoutError as err:
            await self._discard()  # the conversation's state is unknown: start afresh next time
            return _transient(0, f"timed out: {err}", "data")
        except (aiosmtplib.SMTPServerDisconnected, OSError) as err:
            raise _ConnectionDead(_transient(0, f"connection lost: {err}", "mail")) from None

    async def _transaction(self, client: aiosmtplib.SMTP, sender_address: str, recipient: str,
                           message: bytes, options: list[str], encoding: str) -> Delivery:
        """MAIL, RCPT, DATA; any failure on the way resets the connection (RSET is harmless
        where no transaction began, and ends one that did)."""
        stage = "mail"
        try:
            await client.mail(sender_address, options=options, encoding=encoding)
            stage = "rcpt"
            await client.rcpt(recipient, encoding=encoding)
            stage = "data"
            response = await client.data(message)
        except aiosmtplib.SMTPResponseException as err:
            await self._reset(client)
            return _answer(err.code, err.message, stage)
        except ValueError as err:  # refused on our side (an address aiosmtplib cannot send)
            await self._reset(client)
            return _permanent(str(err), stage)
        except (aiosmtplib.SMTPTimeoutError, aiosmtplib.SMTPServerDisconnected, OSError):
            raise  # the caller drops the connection
        except Exception as err:  # any other fault: the state of the envelope is unknown
            await self._discard()
            return _transient(0, f"{type(err).__name__}: {err}", stage)
        return Delivery(DeliveryStatus.DELIVERED, response.code, response.message, "data")

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        """RSET after a failed transaction; a connection that cannot be reset is dropped."""
        if not client.is_connected:
            await self._discard()
            return
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            await self._discard()

    async def _connect(self) -> aiosmtplib.SMTP | Delivery:
        client = aiosmtplib.SMTP(hostname=self._host, port=self._port, timeout=self._timeout_s,
                                 start_tls=self._starttls)
        stage = "connect"
        try:
            await client.connect()
            if client.is_ehlo_or_helo_needed:  # what the server offers (SMTPUTF8, SIZE)
                try:
                    await client.ehlo()
                except aiosmtplib.SMTPHeloError:
                    await client.helo()
            if self._username:
                stage = "auth"
                await client.login(self._username, self._password)
        except aiosmtplib.SMTPResponseException as err:
            client.close()
            return _transient(err.code, err.message, stage)  # setup, not this message
        except (aiosmtplib.SMTPException, OSError) as err:
            client.close()
            return _transient(0, str(err), stage)
        self._client = client
        return client

    async def _discard(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()


def _unsendable(address: str) -> str | None:
    """Why `address` cannot go on a MAIL or RCPT command line as it is; None when it can.
    (aiosmtplib would send what `parseaddr` makes of it, which may be another address.)"""
    if _CONTROL.search(address):
        return f"address {address!r} contains a control character"
    try:
        quoted = quote_address(address)
    except ValueError as err:
        return str(err)
    if quoted != f"<{address}>":
        return f"address {address!r} is not one bare address (local@domain)"
    return None


def _answer(code: int, text: str, stage: str) -> Delivery:
    """The Delivery a reply means; 421 (the server is closing the connection) means retry."""
    if code == 421:
        raise _ConnectionDead(_transient(code, text, stage))
    if 500 <= code < 600:
        return Delivery(DeliveryStatus.PERMANENT, code, text, stage)
    return _transient(code, text, stage)


def _transient(code: int, text: str, stage: str) -> Delivery:
    return Delivery(DeliveryStatus.TRANSIENT, code, text, stage)


def _permanent(text: str, stage: str) -> Delivery:
    """Refused on our side: no reply code, and sending again would only be refused again."""
    return Delivery(DeliveryStatus.PERMANENT, 0, text, stage)

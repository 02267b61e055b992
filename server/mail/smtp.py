"""Sending one message over SMTP, on a connection kept open between sends.

`SmtpSender.send` returns a `Delivery` instead of raising: DELIVERED, TRANSIENT (a 4xx reply,
a refused or dropped connection, a timeout: try again later) or PERMANENT (a 5xx reply to this
message: don't). The caller owns retries and backoff; the one retry made here is for a reused
connection that turned out dead (the server closed it while idle): the send is tried once
more on a fresh connection before it is reported as transient.

A 5xx before the transaction (greeting, EHLO, STARTTLS, AUTH) says the server refuses us, not
this message, so it is reported as TRANSIENT: nothing is dropped while an operator fixes the
setup. A recipient's hard bounce is PERMANENT at stage "rcpt" (`Delivery.bounced`).

Sends are serialized on the one connection by a lock. The password is kept out of `repr`,
logs and every Delivery message.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum

import aiosmtplib

__all__ = ["Delivery", "DeliveryStatus", "SmtpSender"]


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
        try:
            errors, reply = await client.sendmail(sender_address, [recipient], message)
        except aiosmtplib.SMTPRecipientsRefused as err:
            refused = err.recipients[0]
            return _answer(refused.code, refused.message, "rcpt")
        except aiosmtplib.SMTPSenderRefused as err:
            return _answer(err.code, err.message, "mail")
        except aiosmtplib.SMTPDataError as err:
            return _answer(err.code, err.message, "data")
        except aiosmtplib.SMTPResponseException as err:
            return _answer(err.code, err.message, "mail")
        except ValueError as err:  # an address aiosmtplib cannot put on the wire
            return Delivery(DeliveryStatus.PERMANENT, 0, str(err), "mail")
        except aiosmtplib.SMTPTimeoutError as err:
            await self._discard()  # the conversation's state is unknown: start afresh next time
            return _transient(0, f"timed out: {err}", "data")
        except (aiosmtplib.SMTPServerDisconnected, OSError) as err:
            raise _ConnectionDead(_transient(0, f"connection lost: {err}", "mail")) from None
        if recipient in errors:  # not reached for one recipient, but keep the contract
            code, text = errors[recipient]
            return _answer(code, text, "rcpt")
        return Delivery(DeliveryStatus.DELIVERED, 250, reply, "data")

    async def _connect(self) -> aiosmtplib.SMTP | Delivery:
        client = aiosmtplib.SMTP(hostname=self._host, port=self._port, timeout=self._timeout_s,
                                 start_tls=self._starttls)
        stage = "connect"
        try:
            await client.connect()
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


def _answer(code: int, text: str, stage: str) -> Delivery:
    """The Delivery a reply means; 421 (the server is closing the connection) means retry."""
    if code == 421:
        raise _ConnectionDead(_transient(code, text, stage))
    if 500 <= code < 600:
        return Delivery(DeliveryStatus.PERMANENT, code, text, stage)
    return _transient(code, text, stage)


def _transient(code: int, text: str, stage: str) -> Delivery:
    return Delivery(DeliveryStatus.TRANSIENT, code, text, stage)

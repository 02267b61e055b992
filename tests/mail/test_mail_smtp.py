"""SmtpSender against real SMTP servers on this machine: a MailCatcher, and aiosmtpd handlers
that refuse, close or drop, to check each outcome and the one reconnect."""

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from server.mail.mailcatcher import MailCatcher
from server.mail.smtp import NO_SMTPUTF8, Delivery, DeliveryStatus, SmtpSender
from server.mail.smtp_listener import SmtpListener

FROM, TO = "shop@shop.example.com", "ann@example.org"


def message(n: int) -> bytes:
    return (f"From: {FROM}\r\nTo: {TO}\r\nSubject: test {n}\r\nMessage-ID: <m{n}@shop.example.com>"
            f"\r\n\r\nbody {n}\r\n.leading dot\r\n").encode()


class Refusing:
    """Answers RCPT or DATA with a fixed reply; accepts everything else."""

    def __init__(self, rcpt: str | None = None, data: str | None = None) -> None:
        self.rcpt, self.data = rcpt, data

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if self.rcpt:
            return self.rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return self.data or "250 OK"


class Flaky:
    """Accepts mail, but on chosen MAIL commands (counted from 1) hangs up or says 421."""

    def __init__(self, hang_up_on: set[int] = frozenset(), closing_on: set[int] = frozenset()):
        self.hang_up_on, self.closing_on = hang_up_on, closing_on
        self.mails = 0
        self.delivered: list[bytes] = []

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        self.mails += 1
        if self.mails in self.hang_up_on:
            assert server.transport is not None
            server.transport.close()
            return "250 OK"  # never reaches the client
        if self.mails in self.closing_on:
            return "421 4.4.2 idle too long, closing"
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.delivered.append(envelope.original_content or b"")
        return "250 OK"


async def send_all(sender: SmtpSender, count: int, start: int = 0) -> list[Delivery]:
    return [await sender.send(FROM, TO, message(start + i)) for i in range(count)]


def test_delivers_and_reuses_one_connection(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with MailCatcher(tmp_path / "mail") as catcher:
            sender = SmtpSender("127.0.0.1", catcher.smtp_port)
            try:
                deliveries = await send_all(sender, 5)
            finally:
                await sender.close()
            caught = await catcher.wait_for(5, timeout_s=5)
            assert all(d.delivered and d.code == 250 for d in deliveries)
            assert catcher.connections == 1
            assert [m.subject for m in caught] == [f"test {i}" for i in range(5)]
            assert caught[0].raw == message(0)  # dot-stuffing undone, bytes as sent
            assert caught[0].envelope_from == FROM and caught[0].envelope_to == (TO,)

    asyncio.run(scenario())


def test_survives_the_server_dropping_the_connection(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with MailCatcher(tmp_path / "mail") as catcher:
            sender = SmtpSender("127.0.0.1", catcher.smtp_port)
            try:
                first = await send_all(sender, 2)
                await catcher.drop_connections()
                second = await send_all(sender, 2, start=2)
            finally:
                await sender.close()
            assert all(d.delivered for d in first + second)
            assert catcher.connections == 2
            await catcher.wait_for(4)

    asyncio.run(scenario())


@pytest.mark.parametrize(("flaky", "connections"), [
    (Flaky(hang_up_on={2}), 2),  # the reused connection dies under the second send
    (Flaky(closing_on={2}), 2),  # the server says 421 on the reused connection
])
def test_a_dead_reused_connection_is_retried_once_on_a_fresh_one(flaky: Flaky,
                                                                 connections: int) -> None:
    async def scenario() -> None:
        async with SmtpListener(flaky) as listener:
            sender = SmtpSender("127.0.0.1", listener.port)
            try:
                deliveries = await send_all(sender, 3)
            finally:
                await sender.close()
            assert [d.status for d in deliveries] == [DeliveryStatus.DELIVERED] * 3
            assert listener.connections == connections
            assert flaky.delivered == [message(0), message(1), message(2)]

    asyncio.run(scenario())


def test_a_fresh_connection_that_dies_is_transient_without_retry() -> None:
    async def scenario() -> None:
        flaky = Flaky(hang_up_on={1, 2})
        async with SmtpListener(flaky) as listener:
            sender = SmtpSender("127.0.0.1", listener.port)
            try:
                delivery = await sender.send(FROM, TO, message(0))
            finally:
                await sender.close()
            assert delivery.status is DeliveryStatus.TRANSIENT and delivery.code == 0
            assert listener.connections == 1 and flaky.mails == 1

    asyncio.run(scenario())


@pytest.mark.parametrize(("handler", "status", "code", "stage", "bounced"), [
    (Refusing(rcpt="451 4.3.0 Try again later"), DeliveryStatus.TRANSIENT, 451, "rcpt", False),
    (Refusing(rcpt="550 5.1.1 No such user"), DeliveryStatus.PERMANENT, 550, "rcpt", True),
    (Refusing(data="452 4.3.1 Insufficient storage"), DeliveryStatus.TRANSIENT, 452, "data",
     False),
    (Refusing(data="554 5.7.1 Rejected as spam"), DeliveryStatus.PERMANENT, 554, "data", False),
])
def test_refusals(handler: Any, status: DeliveryStatus, code: int, stage: str,
                  bounced: bool) -> None:
    async def scenario() -> None:
        async with SmtpListener(handler) as listener:
            sender = SmtpSender("127.0.0.1", listener.port)
            try:
                first = await sender.send(FROM, TO, message(0))
                again = await sender.send(FROM, TO, message(1))  # the connection stays usable
            finally:
                await sender.close()
            assert (first.status, first.code, first.stage, first.bounced) == \
                (status, code, stage, bounced)
            assert first.message and again == first
            assert listener.connections == 1

    asyncio.run(scenario())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_nothing_listening_is_transient() -> None:
    async def scenario() -> None:
        sender = SmtpSender("127.0.0.1", free_port(), timeout_s=2)
        try:
            delivery = await sender.send(FROM, TO, message(0))
        finally:
            await sender.close()
        assert (delivery.status, delivery.code, delivery.stage) == \
            (DeliveryStatus.TRANSIENT, 0, "connect")

    asyncio.run(scenario())


def test_password_is_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    password = "hunter2-very-secret"

    async def scenario() -> Delivery:
        async with SmtpListener(Refusing()) as listener:  # offers no AUTH without TLS
            sender = SmtpSender("127.0.0.1", listener.port, username="shop", password=password)
            try:
                assert password not in repr(sender) and password not in str(vars(sender).keys())
                return await sender.send(FROM, TO, message(0))
            finally:
                await sender.close()

    caplog.set_level(logging.DEBUG)
    delivery = asyncio.run(scenario())
    assert delivery.status is DeliveryStatus.TRANSIENT and delivery.stage == "auth"
    assert password not in repr(delivery) and password not in caplog.text


def test_close_is_idempotent_and_reconnects_after() -> None:
    async def scenario() -> None:
        flaky = Flaky()
        async with SmtpListener(flaky) as listener:
            sender = SmtpSender("127.0.0.1", listener.port)
            await sender.close()
            assert (await sender.send(FROM, TO, message(0))).delivered
            await sender.close()
            await sender.close()
            assert (await sender.send(FROM, TO, message(1))).delivered
            await sender.close()
            assert listener.connections == 2

    asyncio.run(scenario())


# ---- a failed transaction never leaks into the next send ------------------------------------

class Recording(Refusing):
    """`Refusing`, counting MAIL and RSET, refusing RSET if asked, offering SMTPUTF8 or not."""

    def __init__(self, rcpt: str | None = None, data: str | None = None, *,
                 rset: str | None = None, smtputf8: bool = True) -> None:
        super().__init__(rcpt, data)
        self.rset_reply, self.smtputf8 = rset, smtputf8
        self.mails: list[tuple[str, list[str]]] = []
        self.resets = 0
        self.delivered: list[tuple[tuple[str, ...], bytes]] = []

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [r for r in responses if self.smtputf8 or "SMTPUTF8" not in r]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        self.mails.append((address, mail_options))
        envelope.mail_from = address
        return "250 OK"

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.resets += 1
        return self.rset_reply or "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data:
            return self.data
        self.delivered.append((tuple(envelope.rcpt_tos), envelope.original_content or b""))
        return "250 OK"


class RefusingOne(Recording):
    """Refuses RCPT for one address (after MAIL was accepted), takes every other."""

    def __init__(self, refused: str, **options: Any) -> None:
        super().__init__(**options)
        self.refused = refused

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address == self.refused:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.mark.parametrize(("refused_at", "code"), [("rcpt", 550), ("data", 554)])
def test_a_refused_transaction_is_reset_before_the_next_send(refused_at: str, code: int) -> None:
    async def scenario() -> None:
        recording = RefusingOne("gone@example.org")
        if refused_at == "data":
            recording.data = "554 5.7.1 Rejected as spam"
        async with SmtpListener(recording) as listener:
            sender = SmtpSender("127.0.0.1", listener.port)
            try:
                first = await sender.send(FROM, "gone@example.org" if refused_at == "rcpt"
                                          else TO, message(0))
                recording.data = None
                after = await sender.send(FROM, TO, message(1))
            finally:
                await sender.close()
            assert (first.status, first.code, first.stage) == \
                (DeliveryStatus.PERMANENT, code, refused_at)
            assert after.delivered, after
            assert recording.resets == 1 and listener.connections == 1
            assert recording.delivered == [((TO,), message(1))]

    asyncio.run(scenario())


def test_a_connection_that_refuses_rset_is_dropped_and_the_next_send_reconnects() -> None:
    async def scenario() -> None:
        recording = RefusingOne("gone@example.org", rset="500 5.5.1 no RSET here")
        async with SmtpListener(recording) as listener:
            sender = SmtpSender("127.0.0.1", listener.port)
            try:
                refused = await sender.send(FROM, "gone@example.org", message(0))
                after = await sender.send(FROM, TO, message(1))
            finally:
                await sender.close()
            assert (refused.status, refused.code, refused.stage) == \
                (DeliveryStatus.PERMANENT, 550, "rcpt")
            assert after.delivered and listener.connections == 2
            assert recording.delivered == [((TO,), message(1))]

    asyncio.run(scenario())


@pytest.mark.parametrize("recipient", ["ann\x00@example.org", "ann@example.org\r\nRSET",
                                       "ann@exa mple.org", "<ann@example.org>x@y"])
def test_an_address_that_cannot_go_on_the_wire_is_refused_before_mail(recipient: str) -> None:
    async def scenario() -> None:
        recording = Recording()
        async with SmtpListener(recording) as listener:
            sender = SmtpSender("127.0.0.1", listener.port)
            try:
                refused = await sender.send(FROM, recipient, message(0))
                after = await sender.send(FROM, TO, message(1))
            finally:
                await sender.close()
            assert (refused.status, refused.code) == (DeliveryStatus.PERMANENT, 0)
            assert not refused.bounced and refused.message
            assert after.delivered and listener.connections == 1
            assert [address for address, _ in recording.mails] == [FROM]  # only the good one

    asyncio.run(scenario())


def utf8_message(to: str) -> bytes:
    return (f"From: {FROM}\r\nTo: {to}\r\nSubject: hi\r\nMessage-ID: <u@shop.example.com>\r\n"
            "\r\nbody\r\n").encode()


@pytest.mark.parametrize("to", ["ann@exämple.org", "用户@例子.广告"])
def test_a_non_ascii_address_goes_with_smtputf8_where_offered(to: str) -> None:
    async def scenario() -> None:
        recording = Recording()
        async with SmtpListener(recording) as listener:
            sender = SmtpSender("127.0.0.1", listener.port)
            try:
                delivery = await sender.send(FROM, to, utf8_message(to))
            finally:
                await sender.close()
            assert delivery.delivered, delivery
            [(_, options)] = recording.mails
            assert "SMTPUTF8" in options and "BODY=8BITMIME" in options
            assert recording.delivered == [((to,), utf8_message(to))]

    asyncio.run(scenario())


def test_a_non_ascii_address_without_smtputf8_is_permanent_and_opens_no_transaction() -> None:
    async def scenario() -> None:
        recording = Recording(smtputf8=False)
        async with SmtpListener(recording) as listener:
            sender = SmtpSender("127.0.0.1", listener.port)
            try:
                refused = await sender.send(FROM, "用户@例子.广告", utf8_message("用户@例子.广告"))
                after = await sender.send(FROM, TO, message(1))
            finally:
                await sender.close()
            assert (refused.status, refused.message) == (DeliveryStatus.PERMANENT, NO_SMTPUTF8)
            assert not refused.bounced
            assert after.delivered and listener.connections == 1
            assert [address for address, _ in recording.mails] == [FROM]
            assert "SMTPUTF8" not in recording.mails[0][1]

    asyncio.run(scenario())

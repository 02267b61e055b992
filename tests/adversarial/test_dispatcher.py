"""Poison in the outbox: signed identities whose addresses cannot be mailed as they are, queued
ahead of ordinary users in the same shard, against a real server and a real SMTP server. Every
ordinary email arrives; each poison row ends dead once, with its reason; the dispatcher does
not spin on them (attempts stay at one, the process stays idle after) and the SMTP connection
it shares with the next email stays clean."""

import asyncio
import logging
import time
from pathlib import Path

import grpc
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from harness import (
    CART_RECOVERY,
    BatchBuilder,
    eventually,
    ingest_client,
    rows,
    server,
    settings_for,
    write_sequences,
)
from test_email_flow import MINUTE, T0

from server.clock import ManualClock
from server.mail.mailcatcher import MailCatcher
from server.mail.smtp import NO_SMTPUTF8
from server.mail.smtp_listener import SmtpListener

# Addresses a site may sign that are no mailbox; the ingest may refuse some of them outright,
# which is a clean outcome too. Each maps to what its dead letter must say.
POISON = {
    "line\u2028sep@example.com": "control or line-break",  # a Unicode line separator
    "nel\x85@example.com": "control or line-break",
    "bidi\u202e@example.com": "control or line-break",
    "nul\x00@example.com": "control or line-break",
    "two..dots@example.com": "not an email address",
    "trailing@example.com.": "no valid domain",
    "dash@-example.com": "no valid domain",
    "a(comment)@example.com": "not one email address",  # parseaddr would mail a@example.com
    'quote"@example.com': "not one email address",
}
INTERNATIONAL = ["ann@exämple.com", "用户@例子.广告"]  # the catcher offers SMTPUTF8
ORDINARY = [f"ok{i}@example.com" for i in range(6)]
LONG_USER_ID = "u" * 256  # its unsubscribe URL is longer than a folded line


def _settings(tmp_path: Path, smtp_port: int):
    """One shard, so the poison rows sit ahead of everyone else's in the same outbox."""
    return settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY),
                        PULSEWIRE_SMTP__PORT=str(smtp_port), PULSEWIRE_SERVER__SHARDS="1",
                        PULSEWIRE_SMTP__SENDER="Shop <shop@example.com>")


async def _cart(client, n: int, email: str, user_id: str = "") -> bool:
    """A signed identify with a cart; False when the ingest refuses the identity."""
    batch = BatchBuilder(f"dev-{n}").batch(T0, [(T0, "cart_add", {"cart_id": f"c{n}"})],
                                           email=email, user_id=user_id)
    try:
        await client.Send(batch)
    except grpc.aio.AioRpcError as err:
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        return False
    return True


async def _outbox(app) -> dict[str, tuple[str, int, str | None]]:
    found = await rows(app, "SELECT email, status, attempts, last_error FROM outbox")
    return {email: (status, attempts, error) for email, status, attempts, error in found}


async def _settled(app, count: int) -> bool:
    outbox = await _outbox(app)
    return len(outbox) == count and all(s != "queued" for s, _, _ in outbox.values())


async def _idle_cpu_s(seconds: float = 1.0) -> float:
    """CPU this process spends while nothing is left to do: a row tried in a loop shows here."""
    before = time.process_time()
    await asyncio.sleep(seconds)
    return time.process_time() - before


def _dispatch_records(caplog: pytest.LogCaptureFixture) -> int:
    return sum(r.name == "pulsewire.dispatch" for r in caplog.records)


def test_poison_addresses_are_dead_letters_and_mail_keeps_flowing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pulsewire.dispatch")

    async def scenario() -> None:
        clock = ManualClock(T0)
        async with (MailCatcher(tmp_path / "mail") as catcher,
                    server(_settings(tmp_path, catcher.smtp_port), clock) as app,
                    ingest_client(app) as client):
            poison = [a for n, a in enumerate(POISON) if await _cart(client, n, a)]
            for n, address in enumerate(INTERNATIONAL + ORDINARY, start=100):
                assert await _cart(client, n, address,
                                   LONG_USER_ID if address == ORDINARY[0] else "")
            mailable = INTERNATIONAL + ORDINARY
            clock.advance(60 * MINUTE)

            caught = await catcher.wait_for(len(mailable), timeout_s=8)
            await eventually(lambda: _settled(app, len(poison) + len(mailable)), timeout_s=5)
            assert sorted(m.envelope_to[0] for m in caught) == sorted(mailable)
            outbox = await _outbox(app)
            for address in mailable:
                assert outbox[address][:2] == ("sent", 1), (address, outbox[address])
            for address in poison:
                status, attempts, error = outbox[address]
                assert (status, attempts) == ("dead", 1), (address, outbox[address])
                assert error is not None and POISON[address] in error, (address, error)
            by_to = {m.envelope_to[0]: m for m in caught}
            assert by_to["用户@例子.广告"].to == "用户@例子.广告"
            unsubscribe = by_to[ORDINARY[0]].parsed["List-Unsubscribe"]
            assert "".join(unsubscribe.split()).startswith("<http")
            assert all(len(line) <= 998 for m in caught for line in m.raw.split(b"\r\n"))
            assert catcher.connections <= 4  # one kept-open connection per worker at most

            records = _dispatch_records(caplog)
            assert await _idle_cpu_s() < 0.3
            assert _dispatch_records(caplog) == records  # nothing tried again
            assert records <= len(poison)  # one line for each dead letter, no flood

    asyncio.run(scenario())


class Relay:
    """An SMTP relay that does not offer SMTPUTF8 and refuses `refused-*` recipients after
    MAIL was accepted; it counts MAIL and RSET and keeps what it delivers."""

    def __init__(self) -> None:
        self.mails = 0
        self.resets = 0
        self.delivered: list[str] = []

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = hostname
        return [r for r in responses if "SMTPUTF8" not in r]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        self.mails += 1
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if address.startswith("refused-"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.resets += 1
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.delivered += envelope.rcpt_tos
        return "250 OK"


def test_a_relay_without_smtputf8_dead_letters_a_full_batch_of_rows_and_sends_the_rest(
        tmp_path: Path) -> None:
    non_ascii = [f"用户{i}@例子.广告" for i in range(70)]  # more than one scan takes (64)
    refused = [f"refused-{i}@example.com" for i in range(3)]

    async def scenario() -> None:
        relay = Relay()
        clock = ManualClock(T0)
        async with (SmtpListener(relay) as listener,
                    server(_settings(tmp_path, listener.port), clock) as app,
                    ingest_client(app) as client):
            for n, address in enumerate(non_ascii + refused + ORDINARY):
                assert await _cart(client, n, address)
            clock.advance(60 * MINUTE)

            total = len(non_ascii) + len(refused) + len(ORDINARY)
            await eventually(lambda: _settled(app, total), timeout_s=8)
            assert sorted(relay.delivered) == sorted(ORDINARY)
            outbox = await _outbox(app)
            assert {outbox[a] for a in non_ascii} == {("dead", 1, NO_SMTPUTF8)}
            assert {outbox[a] for a in refused} == {("dead", 1, "550 5.1.1 No such user")}
            assert {outbox[a][:2] for a in ORDINARY} == {("sent", 1)}
            # No transaction for an address the relay cannot carry; each refused one reset.
            assert relay.mails == len(refused) + len(ORDINARY)
            assert relay.resets == len(refused)
            assert listener.connections <= 4
            assert await _idle_cpu_s() < 0.3

    asyncio.run(scenario())

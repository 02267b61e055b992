"""A hard bounce comes back as an event that stops all mail to the user; a site over its event
rate gets RESOURCE_EXHAUSTED, and its batches go through again once the rate allows."""

import asyncio
from pathlib import Path

import grpc
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from harness import (
    CART_RECOVERY,
    BatchBuilder,
    eventually,
    ingest_client,
    server,
    settings_for,
    stat,
    write_sequences,
)

from server.clock import ManualClock
from server.mail.smtp_listener import SmtpListener

T0 = 1_800_000_000_000
HOUR = 3_600_000


class NoSuchUser:
    """An SMTP server that refuses every recipient: 550, a hard bounce."""

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        return "550 5.1.1 No such user"




def test_a_hard_bounce_stops_all_mail_to_the_user(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with SmtpListener(NoSuchUser()) as smtp:
            settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY),
                                    PULSEWIRE_SMTP__PORT=str(smtp.port))
            clock = ManualClock(T0)
            async with server(settings, clock) as app, ingest_client(app) as client:
                builder = BatchBuilder()
                await client.Send(builder.batch(T0, [(T0, "cart_add", {"cart_id": "c1"})],
                                                email="gone@example.com"))
                clock.advance(HOUR)
                await eventually(lambda: stat(app, "dead"))
                at = clock.now_ms() + 1
                clock.set(at)
                await client.Send(builder.batch(at, [(at, "cart_add", {"cart_id": "c2"})],
                                                email="gone@example.com"))
                clock.advance(HOUR)
                assert await eventually(lambda: stat(app, "suppressed:bounced")) == 1
                assert await stat(app, "sent") == 1  # the first decision; nothing after it

    asyncio.run(scenario())


def test_a_site_over_its_rate_is_resource_exhausted_until_the_rate_allows(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY),
                                PULSEWIRE_INGEST__SITE_EVENTS_PER_S="10",
                                PULSEWIRE_INGEST__SITE_BURST_EVENTS="20")
        clock = ManualClock(T0)
        async with server(settings, clock) as app, ingest_client(app) as client:
            builder = BatchBuilder()
            page = [(T0, "page_view", {"path": "/"})] * 10
            for _ in range(2):
                assert (await client.Send(builder.batch(T0, page))).accepted == 10
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await client.Send(builder.batch(T0, page))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "over 10 events/s" in (err.value.details() or "")
            clock.advance(1_000)
            assert (await client.Send(builder.batch(T0, page, seq=3))).accepted == 10

    asyncio.run(scenario())

"""The SMTP server is down when emails come due, then comes back: every due email is delivered
exactly once, after retries with backoff on the server's clock."""

import asyncio
from pathlib import Path

from harness import (
    CART_RECOVERY,
    BatchBuilder,
    eventually,
    free_port,
    ingest_client,
    server,
    settings_for,
    write_sequences,
)

from server.clock import ManualClock
from server.mail.mailcatcher import MailCatcher

T0 = 1_800_000_000_000
USERS = 12


async def _outbox(app, status: str) -> int:
    return sum([(await s.read("SELECT count(*) FROM outbox WHERE status = ?", (status,)))[0][0]
                for s in app.shards])


async def _attempted(app) -> bool:
    rows = [await s.read("SELECT count(*) FROM outbox WHERE attempts > 0") for s in app.shards]
    return sum(r[0][0] for r in rows) == USERS


def test_emails_due_while_smtp_is_down_are_delivered_once_when_it_is_back(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        port = free_port()
        settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY),
                                PULSEWIRE_SMTP__PORT=str(port), PULSEWIRE_SMTP__TIMEOUT_S="2")
        clock = ManualClock(T0)
        async with server(settings, clock) as app, ingest_client(app) as client:
            for i in range(USERS):
                await client.Send(BatchBuilder(f"dev-{i}").batch(
                    T0, [(T0, "cart_add", {"cart_id": "c"})], email=f"u{i}@example.com"))
            clock.advance(60 * 60_000)
            await eventually(lambda: _attempted(app))  # first attempts failed: nobody listens
            assert await _outbox(app, "queued") == USERS
            async with MailCatcher(tmp_path / "mail", smtp_port=port, http_port=0) as catcher:
                clock.advance(1_000)  # the first backoff
                await catcher.wait_for(USERS, timeout_s=15)
                await eventually(lambda: _outbox_sent(app))
                clock.advance(10 * 60_000)
                await asyncio.sleep(0.3)
                recipients = sorted(m.envelope_to[0] for m in catcher.messages)
                assert recipients == sorted(f"u{i}@example.com" for i in range(USERS))

    async def _outbox_sent(app) -> bool:
        return await _outbox(app, "sent") == USERS

    asyncio.run(scenario())

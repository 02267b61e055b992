"""The whole path to a real inbox: signed identify + cart_add over gRPC, the wait_for timing out
on the server's clock, the outbox, rendering, SMTP into a real aiosmtpd server, and the links
in the email working against the server's HTTP listener."""

import asyncio
import email
import re
import urllib.request
from email import policy
from pathlib import Path

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

from server.app import App
from server.clock import ManualClock
from server.mail.catalog import Catalog
from server.mail.mailcatcher import MailCatcher

T0 = 1_800_000_000_000
MINUTE = 60_000


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _settings(tmp_path: Path, smtp_port: int):
    """The example templates and catalog, with the cart-recovery sequence."""
    settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY),
                            PULSEWIRE_SMTP__PORT=str(smtp_port),
                            PULSEWIRE_SMTP__SENDER="Shop <shop@example.com>",
                            PULSEWIRE_TEMPLATES__DIR=str(EXAMPLES / "templates"))
    Catalog.open(Path(settings.server.data_dir) / "catalog.sqlite").import_csv(
        EXAMPLES / "catalog.csv")
    return settings




def _fetch(url: str, data: bytes | None = None) -> tuple[int, str, bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, data=data), timeout=5) as response:
            return response.status, response.headers.get("Location", ""), response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Location", ""), err.read()


def test_an_abandoned_cart_gets_its_reminder_with_working_links(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock(T0)
        async with MailCatcher(tmp_path / "mail", smtp_port=0, http_port=0) as catcher:
            settings = _settings(tmp_path, catcher.smtp_port)
            async with server(settings, clock) as app, ingest_client(app) as client:
                builder = BatchBuilder()
                await client.Send(builder.batch(T0, [
                    (T0, "cart_add", {"sku": "premium-laptop", "cart_id": "cart-9", "qty": 1})],
                    email="ann@example.com"))
                clock.advance(59 * MINUTE)
                await asyncio.sleep(0.2)
                assert catcher.messages == []
                clock.advance(1 * MINUTE)
                await catcher.wait_for(1, timeout_s=10)
                caught = catcher.messages[0]
                assert caught.envelope_to == ("ann@example.com",)
                message = email.message_from_bytes(caught.raw, policy=policy.default)
                assert message["To"] == "ann@example.com"
                assert message["From"] == "Shop <shop@example.com>"
                assert message["Subject"] == "Still thinking about the Aero Pro 14 Laptop?"
                assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
                assert message["Message-ID"].endswith("@example.com>")
                html = message.get_body(("html",)).get_content()
                text = message.get_body(("plain",)).get_content()
                for part in (html, text):  # catalog data, the sequence's offer, low stock
                    assert "Aero Pro 14 Laptop" in part and "SAVE15" in part
                    assert "$1,899.00" in part and "Only 3 left" in part
                base = f"http://127.0.0.1:{app.http_port}"
                settings_url = settings.server.public_url
                links = [u.replace(settings_url, base) for u in
                         re.findall(r'href="([^"]+/c/[^"]+)"', html)]
                assert links, html
                answers = [await asyncio.to_thread(_fetch, link) for link in links]
                assert (302, "https://shop.example.com/cart?cart=cart-9") in [
                    (status, location) for status, location, _ in answers]
                assert {status for status, _, _ in answers} == {302}
                forged = links[0][:-3] + ("AAA" if not links[0].endswith("AAA") else "BBB")
                assert (await asyncio.to_thread(_fetch, forged))[0] == 404
                await eventually(lambda: stat(app, "clicked"))
                [pixel] = [u.replace(settings_url, base) for u in
                           re.findall(r'src="([^"]+/o/[^"]+\.gif)"', html)]
                for _ in range(3):  # a mail client fetching it again counts once
                    status, _, gif = await asyncio.to_thread(_fetch, pixel)
                    assert status == 200 and gif.startswith(b"GIF89a")
                forged_pixel = pixel.replace("/o/", "/o/A")
                assert (await asyncio.to_thread(_fetch, forged_pixel))[:1] == (200,)
                assert await eventually(lambda: stat(app, "opened")) == 1
                await asyncio.sleep(0.2)
                assert await stat(app, "opened") == 1  # the forged one changed nothing
                assert await asyncio.to_thread(_fetch, f"{base}/healthz") == (200, "", b"ok\n")
                unsubscribe = message["List-Unsubscribe"].strip("<>").replace(settings_url, base)
                status, _, page = await asyncio.to_thread(_fetch, unsubscribe)  # a link scanner
                assert status == 200 and b'<form method="post"' in page
                assert b"ann@example.com" in page
                assert [row for s in app.shards
                        for row in await s.read("SELECT email FROM suppression")] == []
                forged_unsubscribe = unsubscribe[:-3] + ("AAA" if not unsubscribe.endswith(
                    "AAA") else "BBB")
                assert (await asyncio.to_thread(_fetch, forged_unsubscribe))[0] == 404
                status, _, _ = await asyncio.to_thread(
                    _fetch, unsubscribe, b"List-Unsubscribe=One-Click")
                assert status == 200
                suppressed = [await s.read("SELECT email, reason FROM suppression")
                              for s in app.shards]
                assert [row for rows in suppressed for row in rows] == [
                    ("ann@example.com", "unsubscribed")]

    asyncio.run(scenario())


def test_a_purchase_before_the_timeout_sends_nothing(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock(T0)
        async with (MailCatcher(tmp_path / "mail", smtp_port=0, http_port=0) as catcher,
                    server(_settings(tmp_path, catcher.smtp_port), clock) as app,
                    ingest_client(app) as client):
            builder = BatchBuilder()
            await client.Send(builder.batch(T0, [(T0, "cart_add", {"cart_id": "c1"})],
                                            email="bob@example.com"))
            clock.advance(30 * MINUTE)
            await client.Send(builder.batch(T0 + 30 * MINUTE, [
                (T0 + 30 * MINUTE, "purchase", {"order_id": "o1", "cart_id": "c1"})],
                email="bob@example.com"))
            clock.advance(120 * MINUTE)
            await eventually(lambda: stat(app, "exited"))
            await asyncio.sleep(0.3)
            assert catcher.messages == []
            assert await stat(app, "sent") == 0

    asyncio.run(scenario())


def test_an_unsigned_identify_is_never_mailed_and_counts_as_unverified(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock(T0)
        async with (MailCatcher(tmp_path / "mail", smtp_port=0, http_port=0) as catcher,
                    server(_settings(tmp_path, catcher.smtp_port), clock) as app,
                    ingest_client(app) as client):
            await client.Send(BatchBuilder().batch(
                T0, [(T0, "cart_add", {"cart_id": "c1"})], email="eve@example.com",
                signed=False))
            clock.advance(61 * MINUTE)
            await eventually(lambda: stat(app, "suppressed:unverified"))
            await asyncio.sleep(0.3)
            assert catcher.messages == []

    asyncio.run(scenario())


def test_a_purchase_within_a_week_of_entry_converts_once_credited_to_the_email(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock(T0)
        async with (MailCatcher(tmp_path / "mail", smtp_port=0, http_port=0) as catcher,
                    server(_settings(tmp_path, catcher.smtp_port), clock) as app,
                    ingest_client(app) as client):
            builder = BatchBuilder()
            await client.Send(builder.batch(T0, [(T0, "cart_add", {"cart_id": "c1"})],
                                            email="cat@example.com"))
            clock.advance(61 * MINUTE)
            await catcher.wait_for(1, timeout_s=10)
            at = clock.now_ms() + 2 * 86_400_000
            clock.set(at)
            await client.Send(builder.batch(at, [(at, "purchase", {"order_id": "o1"})],
                                            email="cat@example.com"))
            assert await _conversions(app) == {-1: 1, 1: 1}  # the sequence's, and the email's
            at += 86_400_000
            clock.set(at)
            await client.Send(builder.batch(at, [(at, "purchase", {"order_id": "o2"})],
                                            email="cat@example.com"))
            assert await _conversions(app) == {-1: 1, 1: 1}  # once per instance

    asyncio.run(scenario())


async def _conversions(app: App) -> dict[int, int]:
    """converted counters by step (-1: the sequence's own), summed over shards."""
    found: dict[int, int] = {}
    for shard in app.shards:
        for _, step, counter, n in await shard.stats():
            if counter == "converted":
                found[step] = found.get(step, 0) + n
    return found

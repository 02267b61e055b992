"""Identity: an attacker with the public site key, a victim's user id, and a signature the
site made for the attacker's own account. Nothing unsigned may route a batch to the victim,
rewrite their profile, make them unmailable, or change where their mail goes."""

import asyncio
from pathlib import Path

from harness import (
    CART_RECOVERY,
    SITE_SECRET,
    BatchBuilder,
    ingest_client,
    server,
    settings_for,
    write_sequences,
)
from test_email_flow import MINUTE, T0

from collector import sign_email, sign_identity
from server.clock import ManualClock
from server.mail.mailcatcher import MailCatcher

VICTIM_ID, VICTIM = "user-42", "ann@example.com"
ATTACKER = "mallory@example.net"


async def _profile(app, key: str) -> tuple | None:
    for shard in app.shards:
        for row in await shard.read(
                "SELECT email, email_verified, user_id, traits FROM users WHERE key = ?", (key,)):
            return row
    return None


def test_nothing_unsigned_redirects_or_rewrites_a_verified_users_mail(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock(T0)
        async with MailCatcher(tmp_path / "mail", smtp_port=0, http_port=0) as catcher:
            settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY),
                                    PULSEWIRE_SMTP__PORT=str(catcher.smtp_port))
            async with server(settings, clock) as app, ingest_client(app) as client:
                victim = BatchBuilder("victim-phone")
                await client.Send(victim.batch(T0, [(T0, "cart_add", {
                    "sku": "lamp", "cart_id": "v-cart"})], email=VICTIM, user_id=VICTIM_ID))
                before = await _profile(app, f"u:{VICTIM_ID}")
                assert before is not None and before[:3] == (VICTIM, 1, VICTIM_ID)
                attacks = [
                    # an unsigned user id, with the attacker's address and text
                    dict(user_id=VICTIM_ID, email=ATTACKER, signature=""),
                    # the victim's id beside a signature the site made for the attacker's email
                    dict(user_id=VICTIM_ID, email=ATTACKER,
                         signature=sign_email(SITE_SECRET, ATTACKER)),
                    # the victim's id and address, unsigned (would make them "unverified")
                    dict(user_id=VICTIM_ID, email=VICTIM, signature="0" * 64),
                    # the attacker's own signed identity, with the victim's id swapped in
                    dict(user_id=VICTIM_ID, email=ATTACKER,
                         signature=sign_identity(SITE_SECRET, "user-666", ATTACKER)),
                ]
                for n, attack in enumerate(attacks):
                    batch = BatchBuilder(f"attacker-{n}").batch(T0 + MINUTE, [(T0 + MINUTE,
                        "cart_add", {"sku": "phish", "cart_id": f"a-cart-{n}"})])
                    batch.identity.user_id = attack["user_id"]
                    batch.identity.email = attack["email"]
                    batch.identity.signature = attack["signature"]
                    ack = await client.Send(batch)
                    assert ack.accepted == 1  # kept, as the attacker device's own claim
                    event = BatchBuilder(f"attacker-ev-{n}").batch(T0 + MINUTE, [
                        (T0 + MINUTE, "identify", {})])
                    event.events[0].identify.user_id = attack["user_id"]
                    event.events[0].identify.email = attack["email"]
                    event.events[0].identify.signature = attack["signature"]
                    event.events[0].identify.traits["name"] = "<a href=https://evil.example>"
                    await client.Send(event)
                # the victim's profile is as it was: address, verified flag, traits
                assert await _profile(app, f"u:{VICTIM_ID}") == before
                # and their reminder goes to them alone, with their own cart in it (the one
                # address the site did sign for the attacker gets the attacker's own cart)
                clock.advance(61 * MINUTE)
                await catcher.wait_for(2, timeout_s=10)
                await asyncio.sleep(0.3)
                to_victim = [m for m in catcher.messages if m.envelope_to == (VICTIM,)]
                assert len(to_victim) == 1 and len(catcher.messages) == 2
                assert ATTACKER not in to_victim[0].text and "phish" not in to_victim[0].text
                assert "evil.example" not in to_victim[0].text
                # the unsigned attacks stayed with their own devices, unverified, never mailed
                for n in (0, 2, 3):
                    claim = await _profile(app, f"d:attacker-{n}")
                    assert claim is not None and claim[1] == 0 and claim[2] is None
                # the one signed for the attacker's own address went to that address alone
                own = await _profile(app, f"e:{ATTACKER}")
                assert own is not None and own[:3] == (ATTACKER, 1, None)
    asyncio.run(scenario())


def test_a_signature_that_binds_the_user_id_routes_to_that_user(tmp_path: Path) -> None:
    """The other side: what the site signs is believed."""
    async def scenario() -> None:
        settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY))
        async with server(settings) as app, ingest_client(app) as client:
            batch = BatchBuilder("new-phone").batch(T0, [(T0, "page_view", {"path": "/"})])
            batch.identity.user_id, batch.identity.email = VICTIM_ID, VICTIM
            batch.identity.signature = sign_identity(SITE_SECRET, VICTIM_ID, VICTIM)
            await client.Send(batch)
            assert (await _profile(app, f"u:{VICTIM_ID}"))[:3] == (VICTIM, 1, VICTIM_ID)
            only_email = BatchBuilder("laptop").batch(T0, [(T0, "page_view", {"path": "/"})])
            only_email.identity.email = "bob@example.com"
            only_email.identity.signature = sign_email(SITE_SECRET, "bob@example.com")
            await client.Send(only_email)
            assert (await _profile(app, "e:bob@example.com"))[:2] == ("bob@example.com", 1)
    asyncio.run(scenario())

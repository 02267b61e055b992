"""Templates run sandboxed and escape what users send: a template that reaches for Python
internals fails alone (its email is dead-lettered, nothing else stops), and markup in event
properties arrives escaped in the HTML part."""

import asyncio
import email
from email import policy
from pathlib import Path

from harness import (
    BatchBuilder,
    eventually,
    ingest_client,
    server,
    settings_for,
    write_sequences,
    write_templates,
)

from server.mail.mailcatcher import MailCatcher

T0 = 1_800_000_000_000
SEQUENCES = ["""
    id: evil
    entry: {event: evil_signup}
    steps: [{send: {template: evil}}]
""", """
    id: welcome
    entry: {event: signup}
    steps: [{send: {template: welcome}}]
"""]
TEMPLATES = {
    "evil.subject.txt": "hi",
    "evil.html": "<p>{{ ''.__class__.__mro__[1].__subclasses__() }}</p>",
    "welcome.subject.txt": "Welcome {{ nickname }}",
    "welcome.html": "<html><body><p>Hello {{ nickname }}!</p></body></html>",
}


def test_a_sandbox_escape_is_dead_lettered_and_markup_is_escaped(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with MailCatcher(tmp_path / "mail", smtp_port=0, http_port=0) as catcher:
            settings = settings_for(
                tmp_path, write_sequences(tmp_path / "seq", *SEQUENCES),
                PULSEWIRE_SMTP__PORT=str(catcher.smtp_port),
                PULSEWIRE_TEMPLATES__DIR=str(write_templates(tmp_path / "tpl", TEMPLATES)))
            async with server(settings) as app, ingest_client(app) as client:
                markup = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
                await client.Send(BatchBuilder("d1").batch(
                    T0, [(T0, "evil_signup", {})], email="eve@example.com"))
                await client.Send(BatchBuilder("d2").batch(
                    T0, [(T0, "signup", {"nickname": markup})], email="ann@example.com"))
                await catcher.wait_for(1, timeout_s=10)

                async def dead() -> bool:
                    rows = [await s.read("SELECT last_error FROM outbox WHERE status = 'dead'")
                            for s in app.shards]
                    return any(rows)

                await eventually(dead)
                await asyncio.sleep(0.2)
                assert [m.envelope_to for m in catcher.messages] == [("ann@example.com",)]
                message = email.message_from_bytes(catcher.messages[0].raw,
                                                   policy=policy.default)
                html = message.get_body(("html",)).get_content()
                assert "<script>" not in html and "<img src=x" not in html
                assert "&lt;script&gt;" in html

    asyncio.run(scenario())

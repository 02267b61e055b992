"""Segment's analytics.js 2.0 (@segment/analytics-next from the npm registry) in headless
Chromium, on a shop page of another origin (segment_page.mjs beside this file), sending to
pulsewire's Segment-spec source: it loads its settings from pulsewire, which name pulsewire as
its API host; a visitor's identify without the site's signature and their Product Added arrive
(the Product Added sent again after the connection was down, as analytics.js retries: through
the server's real CORS preflight) but are never mailed, while a visitor whose identify carries
the site's signature gets the cart reminder; and nothing leaves this machine."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from harness import (
    CART_RECOVERY,
    SITE_KEY,
    SITE_SECRET,
    count,
    eventually,
    free_port,
    rows,
    server,
    settings_for,
    write_sequences,
)

from collector.identity import sign_email
from server.clock import ManualClock
from server.config import Settings
from server.mail.mailcatcher import MailCatcher

PAGE = Path(__file__).with_name("segment_page.mjs")
T0 = 1_800_000_000_000
MINUTE = 60_000


def _settings(tmp_path: Path, http_port: int, page_port: int, smtp_port: int) -> Settings:
    """The server on a port known beforehand: its settings for analytics.js name it
    (`public_url`), and the shop's page, of its own origin, is one of the site's."""
    sites = (f'[{{key="{SITE_KEY}", secret="{SITE_SECRET}",'
             f' origins=["http://127.0.0.1:{page_port}"]}}]')
    return settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY),
                        PULSEWIRE_SITES=sites, PULSEWIRE_SMTP__PORT=str(smtp_port),
                        PULSEWIRE_SERVER__HTTP_LISTEN=f"127.0.0.1:{http_port}",
                        PULSEWIRE_SERVER__PUBLIC_URL=f"http://127.0.0.1:{http_port}")


async def _visit(plan: dict[str, Any]) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        "node", str(PAGE), json.dumps(plan), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 90)
    lines = out.decode().strip().splitlines()
    if process.returncode != 0 or not lines:
        raise AssertionError(f"{PAGE.name} failed ({process.returncode}): {err.decode()[-3000:]}")
    facts: dict[str, Any] = json.loads(lines[-1])
    return facts


def _check_the_wire(facts: dict[str, Any], base: str, signed: str) -> None:
    """Only pulsewire and the page's own origin were asked for anything, and every message
    was answered as applied, the retried one too."""
    assert (facts["blocked"], facts["failures"]) == ([], []), facts
    urls = [r["url"] for r in facts["requests"]]
    assert f"{base}/v1/projects/{SITE_KEY}/settings" in urls
    assert {u for u in urls if not u.startswith(facts["origin"])} <= {
        f"{base}/v1/projects/{SITE_KEY}/settings", f"{base}/v1/i", f"{base}/v1/t"}
    posts = facts["posts"]
    sent = [(p["url"], p["status"], p["headers"].get("x-retry-count")) for p in posts]
    assert sent == [(f"{base}/v1/i", 200, None), (f"{base}/v1/t", 200, "1"),
                    (f"{base}/v1/i", 200, None), (f"{base}/v1/t", 200, None)]
    assert all((p["answer"]["accepted"], p["answer"]["errors"]) == (1, 0) for p in posts)
    assert posts[2]["body"]["context"]["traits"]["signature"] == signed


def test_analytics_next_in_chromium_mails_only_signed_identities(tmp_path: Path) -> None:
    http_port, page_port = free_port(), free_port()
    base = f"http://127.0.0.1:{http_port}"
    signed = sign_email(SITE_SECRET, "two@example.com")
    plan = {"server": base, "pagePort": page_port, "writeKey": SITE_KEY, "visitors": [
        {"userId": "u-1", "email": "one@example.com", "signature": "", "offline": True},
        {"userId": "u-2", "email": "two@example.com", "signature": signed, "offline": False}]}

    async def scenario() -> None:
        clock = ManualClock(T0)
        async with (MailCatcher(tmp_path / "mail", smtp_port=0, http_port=0) as catcher,
                    server(_settings(tmp_path, http_port, page_port, catcher.smtp_port),
                           clock) as app):
            facts = await _visit(plan)
            _check_the_wire(facts, base, signed)
            unsigned_device, signed_device = (p["body"]["anonymousId"]
                                              for p in facts["posts"][::2])
            # An unsigned identify alone carries nothing to keep (no row); the signed one is
            # kept, with no events.
            assert await _kept(app, unsigned_device) == [1]
            assert await _kept(app, signed_device) == [0, 1]
            clock.advance(61 * MINUTE)
            [email] = await catcher.wait_for(1, timeout_s=15)
            assert email.envelope_to == ("two@example.com",)
            await eventually(lambda: _unverified(app), timeout_s=10)
            await asyncio.sleep(0.5)
            assert len(catcher.messages) == 1

    asyncio.run(scenario())


async def _kept(app: Any, device: str) -> list[int]:
    """The events each of a device's applied messages brought, as the dedup table keeps them."""
    return sorted(n for (n,) in await rows(app, "SELECT accepted FROM dedup WHERE device = ?",
                                           (device,)))


async def _unverified(app: Any) -> bool:
    return await count(app, "SELECT count(*) FROM send_log WHERE reason = 'unverified'") == 1

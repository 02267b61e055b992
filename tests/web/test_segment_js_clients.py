"""The Segment-spec HTTP source against the real Node clients from the npm registry (Segment's
@segment/analytics-node and RudderStack's @rudderstack/rudder-sdk-node, run by
segment_clients.mjs beside this file): a backend's identify with the server key and a Product
Added start the cart reminder, which reaches a real SMTP catcher once, although each client
sends the same messages (same messageIds) twice."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from harness import (
    CART_RECOVERY,
    SITE_KEY,
    SITE_SECRET,
    count,
    server,
    settings_for,
    write_sequences,
)

from server.clock import ManualClock
from server.config import Settings
from server.mail.mailcatcher import MailCatcher

CLIENTS = Path(__file__).with_name("segment_clients.mjs")
SERVER_KEY = "backend-write-key-0123456789"
T0 = 1_800_000_000_000
MINUTE = 60_000
# How each client packs a batch: RudderStack gzips it by default, Segment's sends plain JSON.
ENCODING = {"analytics-node": None, "rudder-sdk-node": "gzip"}


def _settings(tmp_path: Path, smtp_port: int) -> Settings:
    sites = f'[{{key="{SITE_KEY}", secret="{SITE_SECRET}", server_key="{SERVER_KEY}"}}]'
    return settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY),
                        PULSEWIRE_SITES=sites, PULSEWIRE_SMTP__PORT=str(smtp_port))


async def _send(client: str, port: int, rounds: int) -> dict[str, Any]:
    """What the client sent, and the errors it reported, for `rounds` fresh clients."""
    plan = json.dumps({"client": client, "host": f"http://127.0.0.1:{port}",
                       "writeKey": SERVER_KEY, "rounds": rounds})
    process = await asyncio.create_subprocess_exec(
        "node", str(CLIENTS), plan, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    lines = out.decode().strip().splitlines()
    if process.returncode != 0 or not lines:
        raise AssertionError(f"{CLIENTS.name} failed ({process.returncode}): "
                             f"{err.decode()[-3000:]}")
    facts: dict[str, Any] = json.loads(lines[-1])
    assert facts["errors"] == [], facts["errors"]
    return facts


def _messages(facts: dict[str, Any]) -> list[tuple[str, str]]:
    return [(m["type"], m["messageId"]) for r in facts["requests"] for m in r["body"]["batch"]]


@pytest.mark.parametrize("client", ["analytics-node", "rudder-sdk-node"])
def test_a_node_client_triggers_the_reminder_once(tmp_path: Path, client: str) -> None:
    async def scenario() -> None:
        clock = ManualClock(T0)
        async with (MailCatcher(tmp_path / "mail", smtp_port=0, http_port=0) as catcher,
                    server(_settings(tmp_path, catcher.smtp_port), clock) as app):
            facts = await _send(client, app.http_port, rounds=2)
            token = base64.b64encode(f"{SERVER_KEY}:".encode()).decode()
            for request in facts["requests"]:
                assert request["url"] == f"http://127.0.0.1:{app.http_port}/v1/batch"
                assert (request["method"], request["headers"]["authorization"]) == (
                    "POST", f"Basic {token}")
                assert request["headers"].get("content-encoding") == ENCODING[client]
            sent = [("identify", "m-identify-7"), ("track", "m-added-7")]
            assert _messages(facts) == sent * 2
            assert await count(app, "SELECT count(*) FROM dedup") == 2
            clock.advance(61 * MINUTE)
            [email] = await catcher.wait_for(1, timeout_s=15)
            assert email.envelope_to == ("seven@example.com",)
            await asyncio.sleep(0.5)
            assert len(catcher.messages) == 1
            assert await count(app, "SELECT coalesce(sum(n), 0) FROM stats"
                                    " WHERE counter = 'entered'") == 1

    asyncio.run(scenario())

"""The Segment-spec HTTP source against a real server and a real SMTP catcher: Segment's own
Python library (segment-analytics-python) sends an identify with the server key and a Product
Added, and the cart reminder arrives once, even when everything is sent twice; a browser's
identify without the site's signature is never mailed; and bad input gets the spec's answers
while the good messages of a batch apply."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import segment.analytics as segment_analytics
from harness import (
    CART_RECOVERY,
    SITE_KEY,
    SITE_SECRET,
    count,
    eventually,
    rows,
    server,
    settings_for,
    write_sequences,
)

from collector.identity import sign_email
from server.clock import ManualClock
from server.mail.mailcatcher import MailCatcher

SERVER_KEY = "backend-write-key-0123456789"
T0 = 1_800_000_000_000
MINUTE = 60_000


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _settings(tmp_path: Path, smtp_port: int = 1):
    sites = (f'[{{key="{SITE_KEY}", secret="{SITE_SECRET}", server_key="{SERVER_KEY}",'
             ' origins=["https://shop.example.com"]}]')
    return settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY),
                        PULSEWIRE_SITES=sites, PULSEWIRE_SMTP__PORT=str(smtp_port))


def _post(port: int, path: str, body: Any, *, key: str | None = SERVER_KEY,
          headers: dict[str, str] | None = None, raw: bytes | None = None,
          ) -> tuple[int, dict[str, Any]]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                     headers={"content-type": "application/json",
                                              **(headers or {})})
    if key is not None:
        token = base64.b64encode(f"{key}:".encode()).decode()
        request.add_header("authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def _flush_with_the_library(port: int, send: Any) -> None:
    client = segment_analytics.Client(SERVER_KEY, host=f"http://127.0.0.1:{port}",
                                      sync_mode=True, max_retries=1)
    send(client)
    client.flush()


def test_segment_s_library_triggers_the_reminder_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock(T0)
        async with (MailCatcher(tmp_path / "mail", smtp_port=0, http_port=0) as catcher,
                    server(_settings(tmp_path, catcher.smtp_port), clock) as app):
            stamp = datetime.fromtimestamp(T0 / 1000, UTC)

            def send(client: Any) -> None:
                client.identify("user-7", {"email": "seven@example.com", "name": "Seven"},
                                timestamp=stamp, message_id="m-identify-7")
                client.track("user-7", "Product Added",
                             {"product_id": "sku-1", "price": 19.99, "quantity": 2,
                              "cart_id": "cart-7", "currency": "EUR"},
                             timestamp=stamp, message_id="m-added-7")

            for _ in range(2):  # the same messages again: they apply once
                await asyncio.to_thread(_flush_with_the_library, app.http_port, send)
            assert await count(app, "SELECT count(*) FROM dedup") == 2
            clock.advance(61 * MINUTE)
            [email] = await catcher.wait_for(1, timeout_s=15)
            assert email.envelope_to == ("seven@example.com",)
            await asyncio.sleep(0.5)
            assert len(catcher.messages) == 1
            assert await count(app, "SELECT coalesce(sum(n), 0) FROM stats"
                                    " WHERE counter = 'entered'") == 1

    asyncio.run(scenario())


def test_a_browser_identify_without_the_site_signature_is_never_mailed(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = ManualClock(T0)
        async with (MailCatcher(tmp_path / "mail", smtp_port=0, http_port=0) as catcher,
                    server(_settings(tmp_path, catcher.smtp_port), clock) as app):
            port = app.http_port
            unsigned = {"writeKey": SITE_KEY, "type": "identify", "anonymousId": "anon-1",
                        "userId": "u-1", "traits": {"email": "one@example.com"},
                        "messageId": "i-1", "timestamp": _iso(T0)}
            added = {"writeKey": SITE_KEY, "anonymousId": "anon-1", "userId": "u-1",
                     "event": "Product Added", "messageId": "t-1", "timestamp": _iso(T0),
                     "properties": {"sku": "sku-1", "cart_id": "c1"}}
            for path, body in (("/v1/i", unsigned), ("/v1/t", added)):
                status, answer = await asyncio.to_thread(
                    _post, port, path, body, key=None,
                    headers={"content-type": "text/plain",
                             "origin": "https://shop.example.com"})
                assert (status, answer["errors"]) == (200, 0)
            clock.advance(61 * MINUTE)
            await eventually(lambda: _suppressed(app), timeout_s=10)
            assert catcher.messages == []
            signed = {**unsigned, "messageId": "i-2", "context": {"traits": {
                "signature": sign_email(SITE_SECRET, "two@example.com"),
                "email": "two@example.com"}}, "traits": {}, "userId": "",
                      "anonymousId": "anon-2"}
            status, _ = await asyncio.to_thread(_post, port, "/v1/identify", signed,
                                                key=SITE_KEY)
            assert status == 200
            rows = await count(app, "SELECT count(*) FROM users WHERE email_verified = 1")
            assert rows == 1

    asyncio.run(scenario())


async def _suppressed(app: Any) -> bool:
    return await count(app, "SELECT count(*) FROM send_log WHERE reason = 'unverified'") == 1


def test_bad_input_gets_the_spec_s_answers_and_the_good_messages_apply(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with server(_settings(tmp_path), ManualClock(T0)) as app:
            port = app.http_port

            def good(i: int) -> dict[str, Any]:
                return {"type": "track", "userId": f"u{i}", "event": "Signed Up",
                        "messageId": f"g{i}", "timestamp": _iso(T0)}

            calls = {
                "malformed": ("/v1/batch", None, {"raw": b"{not json"}),
                "oversized": ("/v1/track", {**good(0), "properties": {"blob": "x" * 40_000}},
                              {}),
                "oversized_in_batch": ("/v1/batch", {"batch": [
                    good(1), {**good(2), "properties": {"blob": "x" * 40_000}}]}, {}),
                "unknown_key": ("/v1/track", good(3), {"key": "nope"}),
                "no_ids": ("/v1/track", {**good(4), "userId": None}, {}),
                "mixed": ("/v1/batch", {"batch": [
                    good(5), {**good(6), "userId": ""}, good(7),
                    {**good(8), "event": ""}, {**good(9), "timestamp": "yesterday"}]}, {}),
                "gzip": ("/v1/batch", None, {"headers": {"content-encoding": "gzip"},
                         "raw": gzip.compress(json.dumps({"batch": [good(10)]}).encode())}),
            }
            answers = {name: await asyncio.to_thread(_post, port, path, body, **extra)
                       for name, (path, body, extra) in calls.items()}
            assert answers["malformed"][0] == 400 and "body" in answers["malformed"][1]["error"]
            assert answers["oversized"][0] == 400
            assert answers["oversized_in_batch"][0] == 400
            assert "batch[1]: larger than 32 KB" in answers["oversized_in_batch"][1]["error"]
            assert answers["unknown_key"][0] == 401
            assert answers["no_ids"] == (200, {
                "success": True, "accepted": 0, "errors": 1,
                "problems": ["batch[0]: userId or anonymousId is required"]})
            status, mixed = answers["mixed"]
            assert (status, mixed["accepted"], mixed["errors"]) == (200, 2, 3)
            assert answers["gzip"][1]["accepted"] == 1
            applied = await count(app, "SELECT count(*) FROM dedup")
            assert applied == 3  # good 5, 7 and 10; nothing of the refused bodies
            metrics = await asyncio.to_thread(lambda: urllib.request.urlopen(
                f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())
            assert 'pulsewire_segment_messages_total{outcome="refused"} 4.0' in metrics

    asyncio.run(scenario())


def test_analytics_js_settings_name_this_server(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with server(_settings(tmp_path)) as app:
            url = f"http://127.0.0.1:{app.http_port}/v1/projects/{SITE_KEY}/settings"
            body = await asyncio.to_thread(
                lambda: json.loads(urllib.request.urlopen(url, timeout=5).read()))
            assert body["integrations"]["Segment.io"]["apiKey"] == SITE_KEY
            assert body["integrations"]["Segment.io"]["apiHost"].endswith("/v1")
            secret = f"http://127.0.0.1:{app.http_port}/v1/projects/{SERVER_KEY}/settings"
            try:
                await asyncio.to_thread(lambda: urllib.request.urlopen(secret, timeout=5))
                raise AssertionError("the server key must not be served")
            except urllib.error.HTTPError as err:
                assert err.code == 404

    asyncio.run(scenario())


def test_an_alias_joins_the_anonymous_device_to_the_user(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with server(_settings(tmp_path), ManualClock(T0)) as app:
            port = app.http_port
            before = {"type": "page", "anonymousId": "anon-9", "messageId": "p-9",
                      "timestamp": _iso(T0), "properties": {"path": "/product/x"}}
            alias = {"type": "alias", "previousId": "anon-9", "userId": "user-9",
                     "messageId": "a-9", "timestamp": _iso(T0 + 1000)}
            after = {**before, "messageId": "p-10", "timestamp": _iso(T0 + 2000)}
            for body in (before, alias, after):
                status, answer = await asyncio.to_thread(_post, port, "/v1/batch",
                                                         {"batch": [body]})
                assert (status, answer["errors"]) == (200, 0)
            owners = await rows(app, "SELECT DISTINCT user_key FROM dedup WHERE device ="
                                " 'anon-9' AND user_key != 'd:anon-9'")
            assert owners == [("u:user-9",)]  # the device's later messages are the user's
            assert await count(app, "SELECT count(*) FROM users WHERE key = 'd:anon-9'") == 0

    asyncio.run(scenario())

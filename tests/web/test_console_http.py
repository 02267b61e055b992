"""The console over real HTTP against a real server: nothing without a session, logins (token,
hashed account, rate limit), cookie and security headers, CSRF on every form, escaping of what
events carry, previews sandboxed, the editor (located errors, saving only when allowed, a
reload all or nothing), off unless enabled, and a listener of its own when configured."""

from __future__ import annotations

import asyncio
import http.cookiejar
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
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

from server.web.console.auth import hash_password

TOKEN = "console-operator-token"
HOSTILE = "<img src=x onerror=alert(1)>"
PAGES = ["/", "/sequences/cart-recovery", "/previews", "/users?who=ann@example.com", "/live",
         "/edit", "/previews/cart-reminder.html", "/live/stream"]


class Browser:
    """A cookie-keeping HTTP client that does not follow redirects."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()

        class Stay(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None

        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar),
                                                  Stay())

    def call(self, path: str, form: dict[str, str] | None = None,
             ) -> tuple[int, dict[str, str], str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.base + path, data=data)
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read(200_000).decode()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read().decode()

    async def get(self, path: str) -> tuple[int, dict[str, str], str]:
        return await asyncio.to_thread(self.call, path)

    async def post(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, str], str]:
        return await asyncio.to_thread(self.call, path, form)

    async def csrf(self, path: str) -> str:
        _, _, body = await self.get(path)
        found = re.search(r'name="csrf" value="([^"]+)"', body)
        assert found, body[:500]
        return found.group(1)

    async def login(self, **fields: str) -> tuple[int, dict[str, str], str]:
        return await self.post("/console/login", {"csrf": await self.csrf("/console/login"),
                                                  **fields})


def _settings(tmp_path: Path, **env: str):
    return settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY),
                        PULSEWIRE_SERVER__OPERATOR_TOKEN=TOKEN,
                        PULSEWIRE_CONSOLE__ENABLED="true", **env)


def test_nothing_without_a_session_and_logins_that_work(tmp_path: Path) -> None:
    hashed = hash_password("a long enough password")
    settings = _settings(tmp_path, PULSEWIRE_CONSOLE__ACCOUNTS=f'{{ann = "{hashed}"}}')

    async def scenario() -> None:
        async with server(settings) as app:
            browser = Browser(f"http://127.0.0.1:{app.http_port}")
            for page in PAGES:
                status, headers, _ = await browser.get("/console" + page)
                assert (status, headers.get("location")) == (303, "/console/login"), page
            for page in ("/users/act", "/edit", "/logout"):
                status, _, _ = await browser.post("/console" + page, {"action": "erase"})
                assert status == 401, page
            status, _, body = await browser.login(token="wrong")
            assert status == 401 and "Wrong token" in body
            status, _, _ = await browser.login(username="ann", password="not it")
            assert status == 401
            status, headers, _ = await browser.login(username="ann",
                                                     password="a long enough password")
            assert (status, headers["location"]) == (303, "/console/")
            cookie = headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace(
                "Strict", "strict") and "Path=/console" in cookie
            for page in PAGES[:-2]:
                status, headers, body = await browser.get("/console" + page)
                assert status == 200, (page, body[:300])
                assert "script-src 'self'" in headers["content-security-policy"]
                assert "'unsafe-inline'" not in headers["content-security-policy"]
                assert headers["cache-control"] == "no-store"
            _, _, overview = await browser.get("/console/")
            assert 'data-metric="cart-recovery/*/entered" data-value="0"' in overview

    asyncio.run(scenario())


def test_logins_are_rate_limited_per_address(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with server(_settings(tmp_path)) as app:
            browser = Browser(f"http://127.0.0.1:{app.http_port}")
            statuses = [(await browser.login(token=f"guess-{i}"))[0] for i in range(32)]
            assert statuses[:30] == [401] * 30 and statuses[-1] == 429
            status, _, _ = await browser.login(token=TOKEN)
            assert status == 429  # even the right token waits out the minute

    asyncio.run(scenario())


def test_every_form_needs_its_csrf_token(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with server(_settings(tmp_path)) as app:
            browser = Browser(f"http://127.0.0.1:{app.http_port}")
            status, _, _ = await browser.post("/console/login", {"token": TOKEN})
            assert status == 403  # the login form too
            await browser.login(token=TOKEN)
            for form in ({"action": "suppress", "email": "a@example.com"},
                         {"action": "suppress", "email": "a@example.com", "csrf": "forged"}):
                status, _, _ = await browser.post("/console/users/act", form)
                assert status == 403
                status, _, _ = await browser.post("/console/edit", {**form, "action": "reload"})
                assert status == 403
            csrf = await browser.csrf("/console/users")
            status, headers, _ = await browser.post("/console/users/act", {
                "action": "suppress", "email": "a@example.com", "who": "a", "csrf": csrf})
            assert status == 303 and "done=suppress" in headers["location"]

    asyncio.run(scenario())


def test_what_events_carry_is_escaped_and_previews_are_sandboxed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with server(_settings(tmp_path)) as app, ingest_client(app) as client:
            now = int(time.time() * 1000)
            await client.Send(BatchBuilder().batch(
                now, [(now, "cart_add", {"cart_id": HOSTILE}), (now, HOSTILE, {HOSTILE: "x"})],
                email="ann@example.com"))
            browser = Browser(f"http://127.0.0.1:{app.http_port}")
            await browser.login(token=TOKEN)
            for page in ("/console/live", "/console/users?who=ann@example.com"):
                _, _, body = await browser.get(page)
                assert "<img src=x" not in body
            _, _, live = await browser.get("/console/live")
            assert "cart_id=&lt;img src=x onerror=alert(1)&gt;" in live
            status, headers, html = await browser.get("/console/previews/cart-reminder.html")
            assert status == 200 and "<html" in html
            assert headers["content-security-policy"].startswith("sandbox;")
            _, _, previews = await browser.get("/console/previews")
            assert 'sandbox="" src="/console/previews/cart-reminder.html"' in previews

    asyncio.run(scenario())


def test_the_editor_locates_errors_saves_only_when_allowed_and_reloads_all_or_nothing(
        tmp_path: Path) -> None:
    bad = "id: broken\nentry: {event: x}\nsteps:\n  - wait_for: {event: y, timeout: 5x}\n"
    good = "id: second\nentry: {event: x}\nsteps:\n  - send: {template: cart-reminder}\n"

    async def scenario(allow: bool) -> None:
        settings = _settings(tmp_path / str(allow),
                             PULSEWIRE_CONSOLE__ALLOW_EDITS="true" if allow else "false")
        folder = Path(settings.sequences.dir)
        async with server(settings) as app:
            browser = Browser(f"http://127.0.0.1:{app.http_port}")
            await browser.login(token=TOKEN)
            csrf = await browser.csrf("/console/edit")
            _, _, body = await browser.post("/console/edit", {
                "csrf": csrf, "action": "check", "name": "broken.yaml", "text": bad})
            assert "broken.yaml:4: steps[0].wait_for.timeout: invalid duration" in body
            _, _, body = await browser.post("/console/edit", {
                "csrf": csrf, "action": "save", "name": "seq-0.yaml", "text": good})
            if not allow:
                assert "Validate and save" not in body and "saved" not in body
                assert "second" not in (folder / "seq-0.yaml").read_text()
                return
            assert "saved seq-0.yaml" in body
            assert (folder / "seq-0.yaml").read_text() == good
            assert "cart-recovery" in (folder / "seq-0.yaml.previous").read_text()
            (folder / "broken.yaml").write_text(bad)  # a bad file beside: a reload refuses
            _, _, body = await browser.post("/console/edit", {"csrf": csrf, "action": "reload"})
            assert "refused: the running set stays in force" in body
            assert sorted(app.engine.rules.sequences) == ["cart-recovery"]
            (folder / "broken.yaml").unlink()
            _, _, body = await browser.post("/console/edit", {"csrf": csrf, "action": "reload"})
            assert "reloaded: 1 sequences running" in body
            assert sorted(app.engine.rules.sequences) == ["second"]

    asyncio.run(scenario(False))
    asyncio.run(scenario(True))


def test_the_console_is_off_unless_enabled_and_can_have_its_own_listener(
        tmp_path: Path) -> None:
    async def scenario() -> None:
        off = settings_for(tmp_path / "off", write_sequences(tmp_path / "seq", CART_RECOVERY),
                           PULSEWIRE_SERVER__OPERATOR_TOKEN=TOKEN)
        async with server(off) as app:
            status, _, _ = await Browser(f"http://127.0.0.1:{app.http_port}").get("/console/")
            assert status == 404
        port = free_port()
        apart = _settings(tmp_path / "apart", PULSEWIRE_CONSOLE__LISTEN=f"127.0.0.1:{port}")
        async with server(apart) as app:
            main = Browser(f"http://127.0.0.1:{app.http_port}")
            assert (await main.get("/console/login"))[0] == 404
            console = Browser(f"http://127.0.0.1:{port}")
            assert (await console.login(token=TOKEN))[0] == 303
            assert (await console.get("/console/"))[0] == 200

    asyncio.run(scenario())


@pytest.mark.parametrize("period", ["today", "all"])
def test_figures_over_a_period_come_from_the_counters_by_day(tmp_path: Path,
                                                             period: str) -> None:
    async def scenario() -> None:
        async with server(_settings(tmp_path)) as app, ingest_client(app) as client:
            now = int(time.time() * 1000)
            for i in range(3):
                await client.Send(BatchBuilder(device=f"d{i}").batch(
                    now, [(now, "cart_add", {"cart_id": f"c{i}"})], email=f"u{i}@example.com"))
            browser = Browser(f"http://127.0.0.1:{app.http_port}")
            await browser.login(token=TOKEN)

            async def shown() -> bool:
                _, _, body = await browser.get(f"/console/?period={period}")
                return 'data-metric="cart-recovery/*/entered" data-value="3"' in body
            await eventually(shown, timeout_s=10)

    asyncio.run(scenario())

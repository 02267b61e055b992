"""The mail catcher: stores what build_message makes, shows it on its pages and API, and
reads its store back on restart."""

import argparse
import asyncio
import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from mail_fixtures import cart_context, example_templates, links

from server.mail.mailcatcher import (
    MailCatcher,
    add_mailcatcher_arguments,
    run_mailcatcher,
    run_mailcatcher_command,
)
from server.mail.message import build_message, message_id_for
from server.mail.render import RenderedEmail
from server.mail.smtp import SmtpSender

SENDER = "Voltline <shop@shop.example.com>"


def fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.headers.get("Content-Type", ""), err.read()


async def get(port: int, path: str) -> tuple[int, str, bytes]:
    return await asyncio.to_thread(fetch, f"http://127.0.0.1:{port}{path}")


async def deliver(port: int, *messages: tuple[str, bytes]) -> None:
    sender = SmtpSender("127.0.0.1", port)
    try:
        for to, data in messages:
            assert (await sender.send("shop@shop.example.com", to, data)).delivered
    finally:
        await sender.close()


def test_catches_built_messages_and_shows_them(tmp_path: Path) -> None:
    email = example_templates(tmp_path).render("cart-reminder", cart_context(), links())
    data = build_message(email, sender=SENDER, to="ann@example.org", message_key="k-1",
                         unsubscribe_url=links().unsubscribe(), now_ms=1_790_000_000_000)
    hostile = RenderedEmail('<script>alert("s")</script>', "<p>x</p><script>alert(1)</script>",
                            "plain")
    other = build_message(hostile, sender=SENDER, to="bo@example.org", message_key="k-2",
                          unsubscribe_url="https://u.example/u/x", now_ms=1_790_000_000_000)

    async def scenario() -> None:
        async with MailCatcher(tmp_path / "mail", clock_ms=lambda: 1_800_000_000_000) as catcher:
            await deliver(catcher.smtp_port, ("ann@example.org", data), ("bo@example.org", other))
            first, second = await catcher.wait_for(2)
            assert (tmp_path / "mail" / f"{first.id}.eml").read_bytes() == data == first.raw

            status, kind, body = await get(catcher.http_port, "/api/messages")
            assert status == 200 and kind.startswith("application/json")
            api = json.loads(body)
            assert [m["id"] for m in api] == [first.id, second.id]
            assert api[0]["subject"] == "Still thinking about the Aero Pro 14 Laptop?"
            assert api[0]["from"] == SENDER and api[0]["to"] == "ann@example.org"
            assert api[0]["received_ms"] == 1_800_000_000_000
            assert ["Message-ID", message_id_for("k-1", SENDER)] in api[0]["headers"]
            assert "Only 3 left" in api[0]["html"] and "Only 3 left" in api[0]["text"]
            assert api[0]["envelope"] == {"from": "shop@shop.example.com",
                                          "to": ["ann@example.org"]}

            status, _, page = await get(catcher.http_port, "/")
            text = page.decode()
            assert status == 200 and "2 message(s)" in text
            assert text.index("&lt;script&gt;alert") < text.index("Still thinking")  # newest first
            assert "<script>" not in text

            status, _, page = await get(catcher.http_port, f"/m/{second.id}")
            text = page.decode()
            assert status == 200 and "<script>" not in text
            assert '<iframe sandbox="allow-popups allow-popups-to-escape-sandbox" srcdoc="' in text
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
            assert "<pre>plain" in text

            status, kind, raw = await get(catcher.http_port, f"/m/{first.id}.eml")
            assert status == 200 and kind == "message/rfc822" and raw == data
            assert (await get(catcher.http_port, "/m/999999"))[0] == 404

    asyncio.run(scenario())


def test_restart_reads_the_store_back(tmp_path: Path) -> None:
    data = build_message(RenderedEmail("Hello", "<p>Hi</p>", "Hi"), sender=SENDER,
                         to="ann@example.org", message_key="k", unsubscribe_url="https://u/x",
                         now_ms=0)

    async def scenario() -> None:
        async with MailCatcher(tmp_path / "mail") as catcher:
            await deliver(catcher.smtp_port, ("ann@example.org", data))
            await catcher.wait_for(1)
        async with MailCatcher(tmp_path / "mail") as catcher:
            assert [m.subject for m in catcher.messages] == ["Hello"]
            await deliver(catcher.smtp_port, ("ann@example.org", data))
            caught = await catcher.wait_for(2)
            assert [m.id for m in caught] == ["000001", "000002"]

    asyncio.run(scenario())


def test_wait_for_times_out_with_a_count(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with MailCatcher(tmp_path / "mail") as catcher:
            with pytest.raises(TimeoutError, match="caught 0 of 1 messages"):
                await catcher.wait_for(1, timeout_s=0.05)

    asyncio.run(scenario())


def test_command_arguments() -> None:
    parser = argparse.ArgumentParser()
    add_mailcatcher_arguments(parser)
    defaults = parser.parse_args([])
    assert (defaults.smtp, defaults.http, defaults.store) == \
        (("127.0.0.1", 1025), ("127.0.0.1", 8025), Path("data/mail"))
    args = parser.parse_args(["--smtp", "0.0.0.0:2525", "--http", "[::1]:0", "--store", "/x"])
    assert (args.smtp, args.http, args.store) == (("0.0.0.0", 2525), ("::1", 0), Path("/x"))
    with pytest.raises(SystemExit):
        parser.parse_args(["--smtp", "nope"])


def test_run_mailcatcher_serves_until_cancelled(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    async def scenario() -> str:
        task = asyncio.create_task(
            run_mailcatcher("127.0.0.1", 0, "127.0.0.1", 0, tmp_path / "store"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        printed = ""
        while "mailcatcher:" not in printed and loop.time() < deadline:
            await asyncio.sleep(0.01)  # polled with a deadline: the task prints when it serves
            printed += capsys.readouterr().out
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return printed

    printed = asyncio.run(scenario())
    assert "mailcatcher: SMTP on 127.0.0.1:" in printed and "web on http://127.0.0.1:" in printed
    assert (tmp_path / "store").is_dir()


@pytest.mark.parametrize("flag", ["--smtp", "--http"])
def test_command_reports_a_busy_port(tmp_path: Path, flag: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_mailcatcher_arguments(parser)
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        other = "--http" if flag == "--smtp" else "--smtp"
        args = parser.parse_args([flag, f"127.0.0.1:{port}", other, "127.0.0.1:0",
                                  "--store", str(tmp_path / "store")])
        assert run_mailcatcher_command(args) == 1
    assert "mailcatcher:" in capsys.readouterr().out

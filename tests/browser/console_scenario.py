"""What the console's Chromium test does and sees (tests/browser/test_console_in_chromium.py):
the server in demo mode with extra sequences and a broken template, traffic over gRPC, a
shopper driven in the demo shop, the console in Chromium (console.mjs) told what to do a line
at a time, `pulsewire admin stats --format json` beside it, and the figures the stats say each
page must show."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from harness import BatchBuilder, ingest_client, rows
from shop import EXAMPLES, ROOT, SITE_SECRET, Shop, drive, shop

from collector.gen.pulsewire.v1 import batch_pb2
from collector.identity import sign_identity
from server.web.console import LiveFeed

CONSOLE = Path(__file__).with_name("console.mjs")
SHOTS = ROOT / "build" / "screenshots" / "console"
TOKEN = "console-operator-token"
SHOPPER = "cleo@example.com"
XSS = "<img src=x onerror=alert(1)>"
USERS = 24
BROKEN = "broken-on-purpose"  # a template that compiles and cannot render
# Beside the shop's two: a holdout and a split, two sends in a row, and a sequence keyed by cart
# (its instance key is an event property, shown on the user page).
SPLIT = """
    id: ab-offer
    entry: {event: signup}
    holdout: 0.25
    steps:
      - split:
          arms:
            - {name: plain, weight: 50, steps: [{send: {template: we-miss-you}}]}
            - name: bold
              weight: 50
              steps: [{send: {template: last-call, vars: {discount_code: SAVE15}}}]
"""
WELCOME = """
    id: welcome
    entry: {event: signup}
    steps:
      - send: {template: product-interest}
      - send: {template: browse-reminder}
"""
CART_KEYED = """
    id: cart-keyed
    entry: {event: cart_add}
    key: cart_id
    steps:
      - wait_for: {event: purchase, timeout: 1d}
        on_event: exit
      - send: {template: cart-reminder}
"""
PAGES = ["/console/", "/console/sequences/ab-offer", "/console/previews",
         "/console/previews/cart-reminder.html", f"/console/users?who={SHOPPER}",
         "/console/live", "/console/live/stream", "/console/edit"]
POSTS = ["/console/users/act", "/console/edit", "/console/logout"]
# Figures that are not the stats report's: the server's own health, and the events per minute.
NOT_STATS = re.compile(r"^\*/(\*/(events_per_minute|dead_letters|shards_behind)|smtp/.+"
                       r"|rejected/.+|shard-\d+/queue_depth)$")

Ask = Callable[..., Awaitable[dict[str, Any]]]


async def run_scenario(tmp: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    templates = tmp / "templates"
    shutil.copytree(EXAMPLES / "templates", templates)
    (templates / f"{BROKEN}.subject.txt").write_text("Never rendered")
    (templates / f"{BROKEN}.html").write_text("<p>{{ no_such_function() }}</p>")
    env = {"PULSEWIRE_CONSOLE__ENABLED": "true", "PULSEWIRE_SERVER__OPERATOR_TOKEN": TOKEN,
           "PULSEWIRE_TEMPLATES__DIR": str(templates)}
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with shop(tmp, wait="60s", sequences=(SPLIT, WELCOME, CART_KEYED), env=env) as running, \
            console_browser(running, tmp) as ask:
        seen["access"] = await ask("access", pages=PAGES, posts=POSTS)
        await _traffic(running)
        sequences = ["ab-offer", "welcome", "cart-seen", "cart-keyed", "engaged-cart"]
        seen["stats_before"] = await admin_stats(running)
        seen["figures"] = await ask("figures", paths=[
            "/console/", *(f"/console/sequences/{s}" for s in sequences)])
        seen["stats"] = await admin_stats(running)  # right after, nothing sent in between
        seen["live"] = await _shopper_live(running, ask)
        seen["xss"] = await _xss(running, ask)
        seen["previews"] = (await ask("previews"))["previews"]
        seen["audit"] = await ask("audit", pages={
            "login": {"path": "/console/login", "anonymous": True},
            "overview": {"path": "/console/"},
            "sequence": {"path": "/console/sequences/ab-offer"},
            "previews": {"path": "/console/previews"},
            "user": {"path": f"/console/users?who={SHOPPER}"},
            "live": {"path": "/console/live"},
            "edit": {"path": "/console/edit?file=seq-0.yaml"},
        })
        seen["events"] = await ask("events")
    return seen


@asynccontextmanager
async def console_browser(running: Shop, tmp: Path) -> AsyncIterator[Ask]:
    """console.mjs with its browser, and how to ask it one thing at a time."""
    log = tmp / "console-mjs.log"
    plan = {"base": running.base, "token": TOKEN, "shots": str(SHOTS)}
    with log.open("wb") as errors:
        process = await asyncio.create_subprocess_exec(
            "node", str(CONSOLE), json.dumps(plan), stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=errors, limit=16 * 1024 * 1024)
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    async def ask(command: str, **args: Any) -> dict[str, Any]:
        stdin.write(json.dumps({"do": command, **args}).encode() + b"\n")
        await stdin.drain()
        line = await asyncio.wait_for(stdout.readline(), 90)
        if not line:
            raise AssertionError(f"console.mjs ended: {log.read_text()[-3000:]}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"console.mjs: {answer['error']}")
        return answer
    try:
        yield ask
    finally:
        if process.returncode is None:
            stdin.write(b'{"do": "quit"}\n')
            stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


async def admin_stats(running: Shop) -> dict[str, Any]:
    """What `pulsewire admin stats --format json` prints, from its own process."""
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("pulsewire")), "admin", "--grpc",
        f"127.0.0.1:{running.app.grpc_port}", "--token", TOKEN, "stats", "--format", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    report: dict[str, Any] = json.loads(out)
    return report


# ---- traffic ----------------------------------------------------------------------------------


def _batch(builder: BatchBuilder, events: list[tuple[str, dict[str, Any]]], email: str,
           user_id: str) -> batch_pb2.Batch:
    """A batch of events now, signed with the shop's site secret."""
    now = int(time.time() * 1000)
    batch = builder.batch(now, [(now, kind, fields) for kind, fields in events], email=email,
                          user_id=user_id, signed=False)
    batch.identity.signature = sign_identity(SITE_SECRET, user_id, email)
    return batch


async def _traffic(running: Shop) -> None:
    """USERS sign up and add a cart over gRPC; some open and click what they are sent; a third
    buy. Settled after each step: every decided email at the catcher, the counters still."""
    builders = [BatchBuilder(device=f"device-{i}") for i in range(USERS)]
    async with ingest_client(running.app) as client:
        await asyncio.gather(*(client.Send(_batch(
            b, [("signup", {"sku": "premium-laptop", "plan": "pro"}),
                ("cart_add", {"cart_id": f"cart-{i}", "sku": "premium-laptop"})],
            f"user{i}@example.com", f"user-{i}")) for i, b in enumerate(builders)))
        await _settled(running)
        public, base = running.app.settings.server.public_url, running.base
        for n, message in enumerate(running.catcher.messages[:8]):
            [pixel] = re.findall(r'src="([^"]+/o/[^"]+\.gif)"', message.html)
            assert await asyncio.to_thread(_status, pixel.replace(public, base)) == 200
            if n < 4:
                link = re.findall(r'href="([^"]+/c/[^"]+)"', message.html)[0]
                assert await asyncio.to_thread(_status, link.replace(public, base)) == 302
        await _settled(running)
        await asyncio.gather(*(client.Send(_batch(
            b, [("purchase", {"order_id": f"order-{i}"})],
            f"user{i}@example.com", f"user-{i}")) for i, b in enumerate(builders) if i % 3 == 0))
        await _settled(running)


async def _settled(running: Shop, timeout_s: float = 20) -> None:
    """Until every shard is idle, every email decided is at the catcher and the counters have
    stood still for a moment."""
    previous: Any = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counters = sorted(await rows(running.app, "SELECT sequence, step, counter, n FROM stats"))
        sent = sum(n for _, _, counter, n in counters if counter == "sent")
        now = (counters, len(running.catcher.messages))
        idle = all(s.queue_depth == 0 for s in running.app.shards)
        if now == previous and idle and sent == len(running.catcher.messages):
            return
        previous = now
        await asyncio.sleep(0.25)
    raise AssertionError(f"not settled within {timeout_s} s: {previous}")


class _Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a click's redirect leaves for the shop: the status is what counts


def _status(url: str) -> int:
    try:
        with urllib.request.build_opener(_Stay).open(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


# ---- the shopper on the Live page --------------------------------------------------------------


async def _shopper_live(running: Shop, ask: Ask) -> dict[str, Any]:
    """The Live page open, a shopper driven in the demo shop: when the server applied each of
    their events and acked each of their batches, and when each row appeared."""
    applied: dict[int, int] = {}  # live entry number -> when the server applied it (ms)
    acks: list[tuple[str, int, int]] = []  # (device, ms, events applied)
    stamping = asyncio.create_task(_stamp(running.app.live, applied))
    ingestor = running.app.ingestor
    assert ingestor is not None
    accept = ingestor.accept

    async def timed(batch: batch_pb2.Batch, peer: str = "") -> batch_pb2.Ack:
        ack = await accept(batch, peer)
        acks.append((batch.device_id, int(time.time() * 1000), ack.accepted))
        return ack
    ingestor.accept = timed  # type: ignore[method-assign]
    try:
        opened = await ask("live_open")
        facts = await drive(running, "abandon", email=SHOPPER, dwell_ms=1000, hover_ms=600)
        user = await _waiting(ask, f"/console/users?who={SHOPPER}", {"cart-seen", "cart-keyed"})
        keys = [f"d:{facts['device']}", user["user"]]
        live = await ask("live_rows", users=keys)
    finally:
        ingestor.accept = accept  # type: ignore[method-assign]
        stamping.cancel()
    return {"opened": opened, "device": facts["device"], "keys": keys, "user": user,
            "rows": live["rows"], "applied": applied,
            "acks": [(ms, n) for device, ms, n in acks if device == facts["device"] and n]}


async def _waiting(ask: Ask, path: str, sequences: set[str],
                   timeout_s: float = 10) -> dict[str, Any]:
    """The user page once it shows the user waiting in `sequences` (or as it is at the end)."""
    deadline = time.monotonic() + timeout_s
    while True:
        page = await ask("look", path=path)
        if sequences <= {i["sequence"] for i in page["instances"]}:
            return page
        if time.monotonic() > deadline:
            return page  # the test says what is missing
        await asyncio.sleep(0.2)


async def _stamp(feed: LiveFeed | None, applied: dict[int, int]) -> None:
    assert feed is not None
    queue = feed.subscribe()  # given each entry as the shard applies it, on the same loop
    try:
        while True:
            entry = await queue.get()
            applied[entry.number] = int(time.time() * 1000)
    finally:
        feed.unsubscribe(queue)


async def _xss(running: Shop, ask: Ask) -> dict[str, Any]:
    """Markup in event properties, by gRPC, on the open Live page, the Live page loaded anew
    and the user's page (the cart-keyed instance's key is the cart id)."""
    email = "mallory@example.com"
    async with ingest_client(running.app) as client:
        await client.Send(_batch(BatchBuilder(device="device-x"), [
            ("cart_add", {"cart_id": XSS, "sku": XSS}), ("note", {"text": XSS})],
            email, "mallory"))
    streamed = await ask("live_rows", text=XSS)
    return {"streamed": streamed, "live": await ask("look", path="/console/live"),
            "user": await ask("look", path=f"/console/users?who={email}"),
            "who": await ask("look", path=f"/console/users?who={XSS}")}


# ---- the checks -------------------------------------------------------------------------------


def expected_figures(report: dict[str, Any]) -> dict[str, Any]:
    """What each data-metric should hold, by the stats report."""
    sequences = report["sequences"]
    want: dict[str, Any] = {f"*/*/{what}": sum(s[what] for s in sequences)
                            for what in ("entered", "converted")}
    want |= {f"*/*/{what}": sum(step[what] for s in sequences for step in s["steps"])
             for what in ("sent", "opened", "clicked")}
    programme = report["programme"]
    for cohort in ("treated", "holdout"):
        want |= {f"programme/{cohort}/{what}": programme[cohort][what]
                 for what in ("entered", "converted", "rate")}
    want |= _uplift("programme/*", programme["uplift"])
    for seq in sequences:
        name = seq["sequence"]
        want |= {f"{name}/*/{what}": seq[what] for what in ("entered", "exited", "converted")}
        want[f"{name}/*/sent"] = sum(step["sent"] for step in seq["steps"])
        for cohort in ("treated", "holdout"):
            want |= {f"{name}/{cohort}/{what}": seq[cohort][what]
                     for what in ("entered", "converted", "rate", "ci95")}
        want |= _uplift(f"{name}/*", seq["uplift"])
        for step in seq["steps"]:
            where = f"{name}/step-{step['step']}"
            want |= {f"{where}/{what}": step[what] for what in
                     ("sent", "opened", "clicked", "converted", "converted_clicked")}
            want |= {f"{where}/suppressed:{why}": n for why, n in step["suppressed"].items()}
        for arm in seq["arms"]:
            want |= {f"{name}/arm-{arm['name']}/{what}": arm[what] for what in
                     ("weight", "entered", "sent", "opened", "clicked", "converted", "rate",
                      "ci95", "p_value_vs_first")}
    return want


def _uplift(prefix: str, uplift: dict[str, Any] | None) -> dict[str, Any]:
    if uplift is None:
        return {f"{prefix}/uplift_absolute": None}
    return {f"{prefix}/uplift_{what}": uplift[what]
            for what in ("absolute", "relative", "p_value", "ci95")}


def on_sequence_page(seq: dict[str, Any], want: dict[str, Any]) -> set[str]:
    """The metrics a sequence's page shows: all of its own but the overview's sent total, and
    only the steps that send (or sent)."""
    name = seq["sequence"]
    hidden = {f"{name}/step-{s['step']}/" for s in seq["steps"]
              if s["kind"] != "send" and not s["sent"]}
    return {m for m in want if m.startswith(f"{name}/") and m != f"{name}/*/sent"
            and not any(m.startswith(h) for h in hidden)}


def same_figure(shown: str, wanted: Any) -> bool:
    if wanted is None:
        return shown == ""
    if isinstance(wanted, list):
        return [float(x) for x in shown.split(",")] == [float(x) for x in wanted]
    return float(shown) == float(wanted)

"""The web console at /console/ in real headless Chromium against the real server (demo mode, a
real SMTP catcher), as the issue's acceptance asks: nothing without a session, no form without
its CSRF token, the figures shown are `pulsewire admin stats --format json`'s at the same
moment, a shopper driven in the demo shop shows on the Live page within a second of being
applied and on their user page waiting, every example template previews, event properties
show as text, every page passes axe-core (nothing serious or critical) and starts with a skip
link; a full-page screenshot of each goes to build/screenshots/console/.

One server and one browser (tests/browser/console.mjs, told what to do a line at a time) serve
every check: the module's fixture runs the whole scenario once and keeps what it saw; each test
asserts on its part.
"""

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

import pytest
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


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Everything the scenario saw, once for the module."""
    tmp = tmp_path_factory.mktemp("console")
    started = time.monotonic()
    found = asyncio.run(_scenario(tmp))
    print(f"\nthe console scenario took {time.monotonic() - started:.1f} s")
    return found


async def _scenario(tmp: Path) -> dict[str, Any]:
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


def test_login_with_the_token_and_nothing_without_a_session(seen: dict[str, Any]) -> None:
    access = seen["access"]
    for page in access["anonymous"]:  # every page, and a made-up session, land on the login
        assert page["url"].endswith("/console/login") and page["login_form"] == 1, page
    assert [page["path"] for page in access["anonymous"]] == PAGES
    assert all(page["url"].endswith("/console/login") for page in access["forged"])
    assert access["no_session"] == dict.fromkeys(POSTS, 401)
    login = access["login"]
    assert login["wrong_token"] == 401 and "Wrong token" in login["wrong_token_problem"]
    assert login["status"] == 303 and login["landed"].endswith("/console/")
    assert login["who"] == "operator"
    cookie = login["cookie"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"


def test_every_form_without_its_csrf_token_is_refused(seen: dict[str, Any]) -> None:
    access = seen["access"]
    login = access["login"]
    assert (login["no_csrf"], login["wrong_csrf"]) == (403, 403)
    assert login["cookie_after_refusals"] is None
    with_session = access["with_session"]
    for form in POSTS:  # no token, a wrong one, the login form's (not this session's)
        assert with_session[form] == {"no_csrf": 403, "wrong_csrf": 403,
                                      "login_forms_csrf": 403}, form
    assert with_session["still_logged_in"].endswith("/console/")  # logout was refused too
    # with its token a form goes through
    assert with_session["valid_unknown_action"] == 400
    assert with_session["valid_check"] == {"status": 200, "outcome": "valid"}


def test_the_figures_shown_are_the_admin_stats_of_the_same_moment(seen: dict[str, Any]) -> None:
    report = seen["stats"]
    assert seen["stats_before"] == report  # a still moment: the page read between the two
    want = expected_figures(report)
    by_id = {s["sequence"]: s for s in report["sequences"]}
    assert by_id["ab-offer"]["holdout"]["entered"] > 0 and by_id["ab-offer"]["arms"]
    steps = [step for s in report["sequences"] for step in s["steps"]]
    assert sum(step["opened"] for step in steps) and sum(step["clicked"] for step in steps)
    assert by_id["welcome"]["converted"] == USERS // 3
    checked = 0
    for path, page in seen["figures"].items():
        assert page["status"] == 200, path
        shown: dict[str, Any] = {}
        for metric, value in page["figures"]:
            if NOT_STATS.match(metric):
                continue
            assert metric in want, f"{path}: {metric} is not in the stats report"
            assert _same(value, want[metric]), f"{path}: {metric} = {value}, stats {want[metric]}"
            shown[metric] = value
            checked += 1
        if path == "/console/":
            for seq in by_id:
                assert {f"{seq}/*/entered", f"{seq}/*/sent", f"{seq}/*/converted",
                        f"{seq}/treated/rate", f"{seq}/holdout/rate"} <= set(shown), seq
            assert {"*/*/entered", "*/*/sent", "*/*/opened", "*/*/clicked", "*/*/converted",
                    "programme/treated/entered", "programme/holdout/rate"} <= set(shown)
        else:
            seq = by_id[path.rsplit("/", 1)[1]]
            assert set(shown) == _on_sequence_page(seq, want), path
    print(f"\n{checked} figures on {len(seen['figures'])} pages equal the stats report")


def test_a_shopper_shows_live_within_a_second_and_waits_on_their_page(
        seen: dict[str, Any]) -> None:
    live = seen["live"]
    assert live["opened"]["status"] == 200
    assert live["opened"]["type"].startswith("text/event-stream")
    mine = [row for row in live["rows"] if row["user"] in live["keys"]]
    assert all(row["streamed"] for row in mine)  # came by the stream, not a reload
    events = {(row["user"], row["cells"][2]) for row in mine}  # when, user, event, ...
    device_key, user_key = live["keys"]
    assert {(device_key, "cart_add"), (user_key, "identify")} <= events, events
    applied = {int(n): ms for n, ms in live["applied"].items()}
    late = [(row["number"], row["seen_ms"] - applied[row["number"]]) for row in mine]
    after_ack = []
    for row in mine:  # the ack of the batch that carried it follows its apply
        ack = min((ms for ms, _ in live["acks"] if ms >= applied[row["number"]]), default=None)
        if ack is not None:
            after_ack.append(row["seen_ms"] - ack)
    assert after_ack, live["acks"]
    print(f"\n{len(mine)} rows of the shopper on the Live page; from apply to row: max "
          f"{max(ms for _, ms in late)} ms; from the batch's ack: max {max(after_ack)} ms")
    assert all(ms < 1000 for _, ms in late), late
    assert max(after_ack) < 1000, after_ack
    user = live["user"]
    assert user["status"] == 200 and user["user"].startswith("u:")
    waiting = {i["sequence"]: i for i in user["instances"]}
    assert {"cart-seen", "cart-keyed"} <= set(waiting), user["instances"]
    for instance in waiting.values():
        assert instance["due"] and int(instance["due"]) > time.time() * 1000 - 60_000, instance
        assert "wait" in instance["at"], instance  # at its wait_for step


def test_event_properties_show_as_text(seen: dict[str, Any]) -> None:
    xss = seen["xss"]
    streamed = [row for row in xss["streamed"]["rows"] if XSS in row["text"]]
    assert streamed and all(row["streamed"] for row in streamed)
    for page in (xss["streamed"], xss["live"], xss["user"], xss["who"]):
        assert page["imgs"] == 0 and page["handlers"] == 0, page
    for page in (xss["live"], xss["user"], xss["who"]):
        assert XSS in page["main"], page["main"][:500]
    assert [i["key"] for i in xss["user"]["instances"] if i["sequence"] == "cart-keyed"] == [XSS]
    assert seen["events"]["dialogs"] == []


def test_every_example_template_previews(seen: dict[str, Any]) -> None:
    names = sorted({p.name.split(".")[0] for p in (EXAMPLES / "templates").iterdir()
                    if not p.name.startswith("_")})
    previews = {p["name"]: p for p in seen["previews"]}
    assert sorted(previews) == sorted([*names, BROKEN])
    for name in names:
        frames = previews[name]["frames"]
        assert len(frames) == 2 and all(f["sandbox"] == "" and f["body"] for f in frames), name
        assert not any("does not render" in w for w in previews[name]["warnings"]), name
    broken = previews[BROKEN]
    assert broken["frames"] == [] and any("does not render" in w for w in broken["warnings"])


def test_every_page_passes_axe_and_starts_with_a_skip_link(seen: dict[str, Any]) -> None:
    audit = seen["audit"]
    print(f"\naxe-core injected by {audit['injection']}")
    for name, page in audit["pages"].items():
        rules = sorted({f"{v['id']} ({v['impact']})" for v in page["violations"]})
        review = sorted({v["id"] for v in page["review"]})
        print(f"{name}: {page['shot']}; axe ran {page['ran']} rules: violations "
              f"{', '.join(rules) or 'none'}; to review by hand {', '.join(review) or 'none'}")
    for name, page in audit["pages"].items():
        assert page["ran"] > 20, name  # axe did run
        serious = [v for v in page["violations"] if v["impact"] in ("serious", "critical")]
        assert serious == [], (name, serious)
        assert page["first_tab"]["class"] == "skip" and page["first_tab"]["href"] == "#main"
        assert page["after_enter"] == {"tag": "MAIN", "id": "main"}, name
        assert {"header", "main", "footer"} <= set(page["landmarks"]), name
        assert Path(page["shot"]).stat().st_size > 5000
    errors = seen["events"]["errors"]
    assert errors == [], errors  # no CSP violation, no script error


# ---- expected figures -------------------------------------------------------------------------


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


def _on_sequence_page(seq: dict[str, Any], want: dict[str, Any]) -> set[str]:
    """The metrics a sequence's page shows: all of its own but the overview's sent total, and
    only the steps that send (or sent)."""
    name = seq["sequence"]
    hidden = {f"{name}/step-{s['step']}/" for s in seq["steps"]
              if s["kind"] != "send" and not s["sent"]}
    return {m for m in want if m.startswith(f"{name}/") and m != f"{name}/*/sent"
            and not any(m.startswith(h) for h in hidden)}


def _same(shown: str, wanted: Any) -> bool:
    if wanted is None:
        return shown == ""
    if isinstance(wanted, list):
        return [float(x) for x in shown.split(",")] == [float(x) for x in wanted]
    return float(shown) == float(wanted)

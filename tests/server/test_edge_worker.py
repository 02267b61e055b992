"""The reference edge worker (the collector under Pyodide in Node.js) between a page's raw
signals and the real server: events arrive over gRPC-Web, bots are dropped and counted, a bad
chunk is refused with the field at fault, a resent chunk is applied once."""

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from harness import CART_RECOVERY, count, eventually, server, settings_for, write_sequences
from test_web_ingest import (
    AFTER_SESSION,
    BROWSER_UA,
    IDENTIFY,
    SESSION,
    Answer,
    _request,
    raw_payload,
)

from server.app import App

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "sdk_js" / "edge" / "worker.mjs"


@asynccontextmanager
async def edge_worker(upstream: str, listen: str = "127.0.0.1:0") -> AsyncIterator[str]:
    """Runs the edge worker; yields its base URL."""
    process = await asyncio.create_subprocess_exec(
        "node", str(WORKER), "--listen", listen, "--upstream", upstream,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None and process.stderr is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        found = re.search(rb"http://127\.0\.0\.1:(\d+)/collect", line)
        if found is None:
            errors = await process.stderr.read()
            raise AssertionError(f"edge worker did not start: {line!r} {errors.decode()[-2000:]}")
        yield f"http://127.0.0.1:{int(found.group(1))}"
    finally:
        process.terminate()
        await process.wait()


async def post(url: str, body: bytes, user_agent: str = BROWSER_UA) -> Answer:
    headers = {"content-type": "text/plain", "user-agent": user_agent}
    return await asyncio.to_thread(_request, url, body, headers, "POST")


async def stats(base: str) -> dict[str, object]:
    answer = await asyncio.to_thread(_request, f"{base}/stats", None, {}, "GET")
    return json.loads(answer.body)  # type: ignore[no-any-return]


def test_edge_worker_turns_raw_signals_into_events_on_the_server(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, write_sequences(tmp_path / "seq", CART_RECOVERY))

    async def scenario() -> None:
        async with server(settings) as app, \
                edge_worker(f"http://127.0.0.1:{app.http_port}") as edge:
            await run_edge_session(app, edge)
    asyncio.run(scenario())


async def run_edge_session(app: App, edge: str) -> None:
    collect = f"{edge}/collect"
    assert (await post(collect, raw_payload(0, SESSION, device="edge-1"))).status == 204
    chunk = raw_payload(1, [IDENTIFY, [2100, "t", "cart_add", {"sku": "lp14", "price": 12.5}],
                            [2200, "x"]], device="edge-1", **AFTER_SESSION)
    assert (await post(collect, chunk)).status == 204
    assert (await post(collect, chunk)).status == 204  # a resent chunk

    async def arrived() -> int:
        return await count(app, "SELECT coalesce(sum(accepted), 0) FROM dedup WHERE device = ?",
                           ("edge-1",))
    applied = await eventually(arrived)
    assert applied >= 8
    assert await count(app, "SELECT count(*) FROM users WHERE email = ?",
                       ("ann@example.com",)) == 1
    bot = await post(collect, raw_payload(0, SESSION, device="edge-bot"),
                     user_agent="Mozilla/5.0 (compatible; Googlebot/2.1)")
    assert bot.status == 204
    bad = await post(collect, raw_payload(0, [[0, "p", "/x", "t"]], device="edge-bad"))
    assert (bad.status, bad.body) == (400, b"s[0]: too few arguments for 'p'")
    facts = await stats(edge)
    assert facts["dropped"] == {"crawler": 1}
    assert facts["resent_chunks"] == 1 and facts["refused_chunks"] == 1
    assert facts["acked"] == facts["forwarded"]
    assert await arrived() == applied  # the resent chunk changed nothing
    assert await count(app, "SELECT count(*) FROM dedup WHERE device IN (?, ?)",
                       ("edge-bot", "edge-bad")) == 0

"""Edge mode in real Chromium: the page loads no Pyodide; the loader's raw signals go to the
reference edge worker (the collector under Pyodide in Node.js), which turns them into the same
events and forwards them over gRPC-Web; the reminder arrives at the SMTP server."""

import asyncio
from pathlib import Path

from harness import free_port
from shop import collectors, drive, off_machine, shop
from test_edge_worker import edge_worker

from collector.events import CartAdd, Dwell, Hover, Identify, Scroll

EMAIL = "ann@example.com"


def test_a_shopper_on_an_edge_mode_page_gets_the_reminder(tmp_path: Path) -> None:
    async def scenario() -> None:
        port = free_port()
        async with shop(tmp_path, wait="8s", mode="edge",
                        endpoint=f"http://127.0.0.1:{port}/collect") as running, \
                edge_worker(running.base, listen=f"127.0.0.1:{port}"):
            facts = await drive(running, "abandon", email=EMAIL, mode="edge")
            [email] = await running.catcher.wait_for(1, timeout_s=30)
            assert email.envelope_to == (EMAIL,) and "Aero Pro 14 Laptop" in email.subject
            batches = running.batches()
            assert batches and collectors(running) == {"pyodide-edge/0.1.0"}
            kinds = {type(e) for e in running.events()}
            assert {CartAdd, Identify, Scroll, Dwell, Hover} <= kinds
            assert not any("pyodide" in url for url in facts["requests"])  # none in the page
            assert off_machine(facts) == []
    asyncio.run(scenario())

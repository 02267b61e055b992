"""A page load's raw chunks in every order, each twice, through the server's /pw/v1/signals
and through the reference edge worker: the server applies the same events as when the chunks
come in order, each once. (The browser delivers the beacons of a page hide in either order.)"""

import asyncio
import itertools
import re
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from harness import CART_RECOVERY, eventually, server, settings_for, write_sequences
from raw_chunks import chunk_payloads, encoded
from test_edge_worker import edge_worker, post
from test_web_ingest import SITE_KEY, T0

from collector import decode_batch
from collector.gen.pulsewire.v1 import batch_pb2
from server.app import App

# Two page views; the sign-in's identify, a hover and engaged time run across chunk boundaries.
VISIT: list[list[Any]] = [
    [0, "p", "/login", "Sign in", ""], [300, "a"], [900, "e", "card:lp14"], [1600, "a"],
    [1700, "i", "", "ann@example.com", "", {}], [1800, "l", "card:lp14"],
    [2500, "p", "/product/lp14", "Laptop", "/login"], [2700, "s", 80], [3100, "a"],
    [3300, "t", "cart_add", {"sku": "lp14", "qty": 1, "price": 1299, "cart_id": "c1"}],
    [4200, "a"], [6000, "v", 0], [6050, "x"],
]
CUTS = [5, 9, 11]  # four chunks


def test_chunks_in_any_order_apply_the_same_events_once_on_the_server(tmp_path: Path) -> None:
    _every_order(tmp_path, via_edge=False)


def test_chunks_in_any_order_apply_the_same_events_once_through_the_edge(tmp_path: Path) -> None:
    _every_order(tmp_path, via_edge=True)


def _every_order(tmp: Path, *, via_edge: bool) -> None:
    settings = settings_for(tmp, write_sequences(tmp / "seq", CART_RECOVERY))
    orders = list(itertools.permutations(range(len(CUTS) + 1)))
    devices = ["in-order", *(f"order-{i}" for i in range(len(orders)))]

    async def scenario() -> None:
        async with server(settings) as app:
            applied = _tap(app)
            if via_edge:
                async with edge_worker(f"http://127.0.0.1:{app.http_port}") as edge:
                    await _send_all(orders, lambda body: _status(f"{edge}/collect", body))
            else:
                signals = f"http://127.0.0.1:{app.http_port}/pw/v1/signals"
                await _send_all(orders, lambda body: _status(signals, body))

            async def all_there() -> bool:
                return all(applied.get(device) for device in devices) and \
                    len({sum(applied[d].values()) for d in devices}) == 1
            await eventually(all_there, timeout_s=20)
            await asyncio.sleep(0.3)  # anything applied twice would have come by now
            expected = applied["in-order"]
            kinds = {text.split("(")[0] for text in expected}
            assert kinds == {"PageView", "Hover", "Identify", "Scroll", "CartAdd", "Dwell"}
            for i, order in enumerate(orders):
                assert applied[f"order-{i}"] == expected, order
            if not via_edge:  # every chunk counted by what became of it
                chunks = len(CUTS) + 1
                assert _counted(app, "raw_chunks", "duplicate") == len(orders) * chunks
                held = _counted(app, "raw_chunks", "held")
                assert held > 0 and _counted(app, "raw_chunks", "released") == 0
                assert _counted(app, "raw_chunks", "applied") + held == (len(orders) + 1) * chunks
    asyncio.run(scenario())


def _counted(app: App, metric: str, outcome: str) -> float:
    found = re.search(rf'pulsewire_{metric}_total{{outcome="{outcome}"}} (\S+)',
                      app.metrics.render().decode())
    return float(found.group(1)) if found else 0.0


async def _status(url: str, body: bytes) -> int:
    return (await post(url, body)).status


async def _send_all(orders: list[tuple[int, ...]],
                    send: Callable[[bytes], Coroutine[Any, Any, int]]) -> None:
    for body in chunk_payloads(VISIT, CUTS, site=SITE_KEY, device="in-order", t0=T0):
        assert await send(encoded(body)) == 204
    for i, order in enumerate(orders):
        bodies = chunk_payloads(VISIT, CUTS, site=SITE_KEY, device=f"order-{i}", t0=T0)
        statuses = [await send(encoded(bodies[n])) for n in [*order, *order]]
        assert set(statuses) <= {202, 204}


def _tap(app: App) -> dict[str, Counter[str]]:
    """Each device's applied events (as text, with their page times), counted: batches acked
    as new, not as duplicates."""
    ingestor = app.ingestor
    assert ingestor is not None
    accept = ingestor.accept
    applied: dict[str, Counter[str]] = {}

    async def tapped(batch: batch_pb2.Batch, peer: str = "") -> batch_pb2.Ack:
        ack = await accept(batch, peer)
        if not ack.duplicate:
            events = [repr(e).replace(str(batch.device_id), "") for e in decode_batch(batch)]
            applied.setdefault(batch.device_id, Counter()).update(events)
        return ack
    ingestor.accept = tapped  # type: ignore[method-assign]
    return applied

"""The measured loss harness: no event a page signals is lost or applied twice, in real
Chromium against the real server and the demo shop, in the browser mode and the edge mode.

How this works: visits.mjs runs 44 visitors (4 per pattern, each a device of its own, about 8
at a time in one Chromium) and prints the page's own record of what each page signalled: its page
views (document loads and back-forward-cache restores) and its pw("track") and
pw("identify") calls, with the page's device id. The server keeps every batch it applied
(`Shop.tap_applied`: not a duplicate, not a bot's). Both sides are reduced to counts per
(device, what, which): a page view by its path, a track by its event and sku (or order), an
identify by its user id; a batch names its device even after identify routes it to the user.
For each key, min(recorded, applied) is applied and anything beyond recorded is a duplicate.
The figure is printed, per mode and per pattern, and written as JSON beside the test's files.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
from harness import free_port
from shop import Shop, shop
from test_edge_worker import edge_worker

from collector import decode_batch
from collector.events import (
    CartAdd,
    CartRemove,
    CheckoutStart,
    Custom,
    Event,
    Identify,
    PageView,
    Purchase,
)

VISITS = Path(__file__).with_name("visits.mjs")
PATTERNS = ("network_down", "leave_0s", "leave_0.3s", "leave_1s", "leave_2.5s", "leave_8s",
            "sign_in", "back_forward", "reload", "tab_closed", "two_tabs")
VISITORS_PER_PATTERN = 4
POOL = 8  # visitors at a time (the network-down ones run beside them)
SKUS = ("premium-laptop", "ultrabook-13", "anc-headphones", "wireless-earbuds",
        "monitor-27-4k", "mechanical-keyboard", "portable-ssd-1tb", "webcam-1080p")
APPLIED_WAIT_S = 20  # after the visits: for what is still on its way (the edge worker)

Key = tuple[str, str, str]  # (device, what, which): ("k3Jx...", "cart_add", "premium-laptop")


@pytest.mark.timeout(300)
def test_every_signal_is_applied_once_in_browser_mode(tmp_path: Path) -> None:
    asyncio.run(measure(tmp_path, "browser"))


@pytest.mark.timeout(300)
def test_every_signal_is_applied_once_in_edge_mode(tmp_path: Path) -> None:
    asyncio.run(measure(tmp_path, "edge"))


async def measure(tmp: Path, mode: str) -> None:
    async with shop_in(tmp, mode) as running:
        running.tap_applied()
        started = time.monotonic()
        visits = await run_visitors(running.base, mode)
        assert not (errors := harness_errors(visits)), "harness failed:\n" + "\n".join(errors)
        recorded = {v["id"]: recorded_keys(v) for v in visits}
        await until(lambda: not missing(recorded, applied_keys(running.applied)),
                    APPLIED_WAIT_S)
        figure = Figure.of(mode, visits, recorded, applied_keys(running.applied),
                           time.monotonic() - started)
    (tmp / f"loss-{mode}.json").write_text(json.dumps(figure.facts(), indent=1))
    print("\n" + figure.text() + "\n" + json.dumps(figure.facts()))
    every_signal_once = (figure.total.applied == figure.total.recorded
                         and figure.total.duplicates == 0)
    assert every_signal_once, "\n".join([figure.text(), *map(str, figure.shortfalls)])


@asynccontextmanager
async def shop_in(tmp: Path, mode: str) -> AsyncIterator[Shop]:
    """The demo shop in `mode`; in edge mode, with the reference edge worker in front."""
    if mode == "browser":
        async with shop(tmp) as running:
            yield running
        return
    port = free_port()
    async with shop(tmp, mode="edge", endpoint=f"http://127.0.0.1:{port}/collect") as running, \
            edge_worker(running.base, listen=f"127.0.0.1:{port}"):
        yield running


def visitors() -> list[dict[str, str]]:
    return [{"id": f"v{n:02d}", "pattern": pattern, "sku": SKUS[n % len(SKUS)]}
            for n, pattern in enumerate(p for p in PATTERNS
                                        for _ in range(VISITORS_PER_PATTERN))]


async def run_visitors(base: str, mode: str) -> list[dict[str, Any]]:
    """Every visitor's record, from one node process running visits.mjs."""
    plan = json.dumps({"base": base, "mode": mode, "pool": POOL, "visitors": visitors()})
    process = await asyncio.create_subprocess_exec(
        "node", str(VISITS), plan, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 240)
    lines = out.decode().strip().splitlines()
    if process.returncode != 0 or not lines:
        raise AssertionError(f"visits.mjs failed ({process.returncode}): {err.decode()[-3000:]}")
    found: list[dict[str, Any]] = json.loads(lines[-1])["visitors"]
    return found


def harness_errors(visits: list[dict[str, Any]]) -> list[str]:
    """What went wrong in the visits themselves: a step that failed, or a visitor whose pages
    did not name exactly one device (each visitor is one browser profile, one device)."""
    failed = [f"{v['id']} ({v['pattern']}): {v['error']}" for v in visits if v["error"]]
    devices = [f"{v['id']} ({v['pattern']}): devices {v['devices']}" for v in visits
               if len(v["devices"]) != 1]
    return failed + devices


def recorded_keys(visit: dict[str, Any]) -> Counter[Key]:
    """What the visitor's pages signalled, counted by key."""
    keys: Counter[Key] = Counter()
    for entry in visit["entries"]:
        what, which = record_key(entry)
        keys[(entry["device"] or "", what, which)] += 1
    return keys


def record_key(entry: dict[str, Any]) -> tuple[str, str]:
    if entry["kind"] == "page_view":
        return "page_view", entry["path"]
    if entry["kind"] == "identify":
        return "identify", entry["user_id"]
    props = entry["props"]
    return entry["name"], str(props.get("sku") or props.get("order_id") or "")


def event_key(event: Event) -> tuple[str, str] | None:
    """The key of an event the page's record names (None for measured signals: scroll...)."""
    match event:
        case PageView():
            return "page_view", event.path
        case Identify():
            return "identify", event.user_id
        case CartAdd() | CartRemove():
            return ("cart_add" if isinstance(event, CartAdd) else "cart_remove"), event.sku
        case Purchase():
            return "purchase", event.order_id
        case CheckoutStart():
            return "checkout_start", ""
        case Custom():
            return event.name, ""
    return None


def applied_keys(batches: Iterable[Any]) -> Counter[Key]:
    keys: Counter[Key] = Counter()
    for batch in batches:
        for event in decode_batch(batch):
            if (key := event_key(event)) is not None:
                keys[(batch.device_id, *key)] += 1
    return keys


def missing(recorded: dict[str, Counter[Key]], applied: Counter[Key]) -> bool:
    return any(applied[key] < n for keys in recorded.values() for key, n in keys.items())


async def until(check: Callable[[], bool], timeout_s: float, every_s: float = 0.25) -> bool:
    """Poll `check` until it is true or the deadline passes; says which."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(every_s)
    return True


@dataclass(frozen=True)
class Comparison:
    """One visitor's record against what the server applied for its device(s)."""
    recorded: int
    applied: int  # of the recorded ones
    lost: Counter[Key]
    extra: Counter[Key]  # applied beyond what was recorded: duplicates

    @classmethod
    def of(cls, recorded: Counter[Key], applied: Counter[Key]) -> Comparison:
        devices = {key[0] for key in recorded}
        mine = Counter({key: n for key, n in applied.items() if key[0] in devices})
        return cls(recorded.total(), (recorded & mine).total(), recorded - mine,
                   mine - recorded)


@dataclass
class Tally:
    visitors: int = 0
    recorded: int = 0
    applied: int = 0
    duplicates: int = 0
    lost: dict[str, int] = field(default_factory=dict)  # by what: page_view, cart_add...
    left_after_ms: list[int] = field(default_factory=list)  # leave patterns: as it happened

    def add(self, found: Comparison, left_after_ms: int | None) -> None:
        self.visitors += 1
        if left_after_ms is not None:
            self.left_after_ms.append(left_after_ms)
        self.recorded += found.recorded
        self.applied += found.applied
        self.duplicates += found.extra.total()
        for (_device, what, _which), n in found.lost.items():
            self.lost[what] = self.lost.get(what, 0) + n

    def text(self) -> str:
        share = 100 * self.applied / self.recorded if self.recorded else 100.0
        lost = ", ".join(f"{what} {n}" for what, n in sorted(self.lost.items()))
        left = self.left_after_ms
        return (f"{self.visitors} visitors, {self.recorded} signals recorded, {self.applied} "
                f"applied ({share:.1f}%), {self.duplicates} duplicates"
                + (f"; lost: {lost}" if lost else "")
                + (f" (left {min(left)}-{max(left)} ms after load)" if left else ""))


@dataclass
class Figure:
    mode: str
    took_s: float
    total: Tally
    patterns: dict[str, Tally]
    bfcache_restores: int
    shortfalls: list[dict[str, Any]]  # each visitor with a loss or a duplicate, and its facts

    @classmethod
    def of(cls, mode: str, visits: list[dict[str, Any]], recorded: dict[str, Counter[Key]],
           applied: Counter[Key], took_s: float) -> Figure:
        total, patterns = Tally(), {p: Tally() for p in PATTERNS}
        shortfalls = []
        for visit in visits:
            found = Comparison.of(recorded[visit["id"]], applied)
            total.add(found, None)
            patterns[visit["pattern"]].add(found, visit["left_after_ms"])
            if found.lost or found.extra:
                shortfalls.append(shortfall(visit, found))
        restores = sum(v["restored"] for v in visits)
        return cls(mode, round(took_s, 1), total, patterns, restores, shortfalls)

    def text(self) -> str:
        lines = [f"loss harness [{self.mode}]: {self.total.text()} ({self.took_s} s, "
                 f"{self.bfcache_restores} back-forward cache restores)"]
        lines += [f"  {name:<13} {tally.text()}" for name, tally in self.patterns.items()]
        return "\n".join(lines)

    def facts(self) -> dict[str, Any]:
        return asdict(self)


def shortfall(visit: dict[str, Any], found: Comparison) -> dict[str, Any]:
    def named(keys: Counter[Key]) -> list[str]:
        return [f"{what} {which} x{n}" for (_device, what, which), n in sorted(keys.items())]
    return {"visitor": visit["id"], "pattern": visit["pattern"], "devices": visit["devices"],
            "lost": named(found.lost),
            "duplicates": named(found.extra), "collector_up_ms": visit["collector_up_ms"],
            "failed_requests": visit["failed_requests"]}

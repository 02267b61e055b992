"""What SQLite can do and what the shard files cost.

  sqlite rows   raw sqlite3 `executemany` into a file on disk, the shard files' pragmas (WAL,
                synchronous=NORMAL): one row per event of the load client's batches (device,
                seq, position, kind, dt_ms, the event's bytes), committed in transactions of as
                many events as the server's shard transactions carried in the ingest run. No
                engine, no gRPC, one thread: the ceiling of one writer storing events as rows.
  bytes/user    a fresh server (8 shards) takes every user's visit (`Visits`: of ten users,
                six browse anonymously, three are signed in, one signs in during the visit
                and is merged; a third add to the cart, which starts sequences and timers);
                then it is stopped (SIGTERM: queues drained, files checkpointed) and the shard
                files' bytes, -wal and -shm included, are divided by the users.
  fill          `fill_users`: shard files holding a month of many signed-in shoppers, written
                through the shards' own write path, for the console's benchmark.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import multiprocessing
import os
import random
import sqlite3
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector import CartAdd, CheckoutStart, Custom, Dwell, Hover, PageView, Purchase, Scroll
from collector import Event as CollectorEvent
from collector.gen.pulsewire.v1 import batch_pb2
from scripts.benchmarks import server_stack
from scripts.benchmarks.load_client import LoadSpec, run_load
from scripts.benchmarks.traffic import (
    SITE_KEY,
    SITE_SECRET,
    SKUS,
    Traffic,
    Visits,
    body,
    header,
)
from server.clock import ManualClock
from server.config import IngestSettings, SiteSettings
from server.engine import Engine, Event, PropValue, compile_rules
from server.ingest.batches import decode_batch
from server.sequences import load_paths
from server.storage.router import feedback_device, shard_of
from server.storage.schema import PRAGMAS
from server.storage.shard import Identity, IngestResult, OutboxRow, Shard

_BATCHES = 1000


def sqlite_rows(rows_per_commit: int, duration_s: float) -> dict[str, Any]:
    rows = _event_rows()
    per_commit = max(1, rows_per_commit)
    with tempfile.TemporaryDirectory(prefix="pw-bench-") as tmp, \
            closing(sqlite3.connect(Path(tmp) / "events.sqlite", isolation_level=None)) as db:
        for pragma in PRAGMAS:
            db.execute(pragma)
        db.execute("CREATE TABLE events (device TEXT NOT NULL, seq INTEGER NOT NULL,"
                   " i INTEGER NOT NULL, kind TEXT NOT NULL, dt_ms INTEGER NOT NULL,"
                   " body BLOB NOT NULL)")
        written, at, started = 0, 0, time.perf_counter()
        while time.perf_counter() - started < duration_s:
            chunk = rows[at:at + per_commit]
            at = at + per_commit if at + per_commit < len(rows) else 0
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?)", chunk)
            db.execute("COMMIT")
            written += len(chunk)
        elapsed = time.perf_counter() - started
    rate = written / elapsed
    print(f"raw sqlite3 executemany: {rate:,.0f} rows/s ({per_commit:,} a commit)", flush=True)
    return {"sqlite_rows_per_s": round(rate), "sqlite_rows_per_commit": per_commit}


def _event_rows() -> list[tuple[str, int, int, str, int, bytes]]:
    traffic = Traffic("rows", 4000, 100, 1)
    rows = []
    for _ in range(_BATCHES):
        batch = batch_pb2.Batch.FromString(traffic.batch())
        for i, event in enumerate(batch.events):
            kind = event.WhichOneof("payload") or ""
            rows.append((batch.device_id, batch.seq, i, kind, event.dt_ms,
                         event.SerializeToString()))
    return rows


def bytes_per_user(users: int) -> dict[str, Any]:
    visits = Visits("store", users, 7)  # the load client makes the same ones
    events = visits.events()
    with tempfile.TemporaryDirectory(prefix="pw-bench-") as tmp:
        with ExitStack() as stack:
            server = server_stack.start(stack, Path(tmp), shards=8, catalog=False)
            data_dir = server.data_dir
            load = run_load(LoadSpec("users", server.target, users=users, prefix="store",
                                     seed=7), server.pid)
        first_s, sign_in_s = load["part_s"]
        if load["rejected"] or load["events"] != events:
            print(f"warning: storage load: {load['rejected']} rejected, {load['events']:,} of "
                  f"{events:,} events acked")
        files = sorted(data_dir.glob("shard-*"))
        total = sum(f.stat().st_size for f in files)
        tables = _bytes_by_table(sorted(data_dir.glob("shard-*.sqlite")))
    per_user = total / users
    print(f"storage: {users:,} users, {events:,} events, {total / 1e6:.1f} MB in "
          f"{len(files)} files: {per_user:,.0f} bytes per user", flush=True)
    return {"storage_bytes_per_user": round(per_user), "storage_users": users,
            "storage_events_per_user": round(events / users, 1),
            "storage_shard_bytes": total, "storage_first_batches_per_s": round(users / first_s),
            "storage_merges_per_s": round(len(visits.parts[1]) / sign_in_s),
            "storage_bytes_by_table": tables}


def _bytes_by_table(files: list[Path]) -> dict[str, int]:
    """Bytes of each table and index over the files (SQLite's dbstat, when it has it)."""
    out: dict[str, int] = {}
    try:
        for path in files:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                for name, size in db.execute(
                        "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
                    out[name] = out.get(name, 0) + int(size)
    except sqlite3.OperationalError:  # built without SQLITE_ENABLE_DBSTAT_VTAB
        return {}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


# ---- shard files holding many users (the console's benchmark) -------------------------------

FILL_DAYS = 30
_FILL_STEP_MS = 4 * 3_600_000  # the fill's clock moves four hours at a time
_DAY_MS = 86_400_000
_OPENED, _CLICKED, _BOUGHT = 0.3, 0.25, 0.3  # of emails sent; of those opened; of those clicked


@dataclass(frozen=True)
class _FillPart:
    data_dir: Path
    sequences: Path
    users: int
    shards: int
    owned: tuple[int, ...]
    end_ms: int
    days: int
    seed: int


def fill_users(data_dir: Path, sequences: Path, users: int, *, shards: int = 8,
               days: int = FILL_DAYS) -> dict[str, Any]:
    """Shard files in `data_dir` holding `users` signed-in shoppers, each with one visit over the
    last `days` days, written by the shards' own write path (`Shard.enqueue_ingest`, group
    commit, the engine of `sequences`) under a clock that walks those days four hours at a time:
    timers fire as they come due, and the emails they queue are marked sent as the dispatcher
    would (`finish_outbox`); a share is opened, clicked, and followed by a purchase, as the
    tracking endpoints would apply them. So the files hold what a month of traffic leaves: user
    rows with engine states, the send log, the counters and the counters by day, nothing
    queued, and only future timers. Two processes per core (each waits on its SQLite thread
    much of the time), each with its share of the shards."""
    workers = max(1, min(shards, 2 * (os.cpu_count() or 1)))
    end_ms = time.time_ns() // 1_000_000
    parts = [_FillPart(data_dir, sequences, users, shards, tuple(range(w, shards, workers)),
                       end_ms, days, w) for w in range(workers)]
    started = time.perf_counter()
    spawn = multiprocessing.get_context("spawn")  # no inherited loop, threads or sockets
    with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
        counts = list(pool.map(_fill_part, parts))
    elapsed = time.perf_counter() - started
    total = {key: sum(c[key] for c in counts) for key in counts[0]}
    print(f"fill: {users:,} users over {days} days into {shards} shards in {elapsed:.0f} s "
          f"({workers} processes): {total['events']:,} events, {total['sent']:,} emails sent, "
          f"{total['opened']:,} opened, {total['clicked']:,} clicked", flush=True)
    return {"fill_s": round(elapsed, 1), **{f"fill_{key}": n for key, n in total.items()}}


def fill_user(i: int) -> tuple[str, str]:
    """The routing key and the email of the fill's `i`th user."""
    return f"u:shopper-{i}", f"shopper-{i}@bench.example"


def _device(key: str) -> str:
    return f"device-{key[2:]}"


def _fill_part(part: _FillPart) -> dict[str, int]:
    return asyncio.run(_fill(part))


async def _fill(part: _FillPart) -> dict[str, int]:
    sequence_set, _ = load_paths([part.sequences])
    engine = Engine(compile_rules(sequence_set))
    start_ms = part.end_ms - part.days * _DAY_MS
    clock = ManualClock(start_ms)
    ttl_ms = IngestSettings().dedup_ttl_s * 1000
    shards = [Shard(i, part.data_dir / f"shard-{i:03d}.sqlite", lambda: engine, clock,
                    dedup_ttl_ms=ttl_ms) for i in part.owned]  # the server's file names
    by_index = {shard.index: shard for shard in shards}
    for shard in shards:
        await shard.open()
    counts = {"users": 0, "events": 0}
    later = _Feedback(random.Random(part.seed))
    visits = _Visits()
    mine = [i for i in range(part.users)
            if shard_of(fill_user(i)[0], part.shards) in by_index]
    span_ms, at = part.end_ms - start_ms, 0
    try:
        for window_end in [*range(start_ms + _FILL_STEP_MS, part.end_ms, _FILL_STEP_MS),
                           part.end_ms]:
            clock.set(window_end)
            pending: list[asyncio.Future[IngestResult]] = []
            while at < len(mine) and start_ms + mine[at] * span_ms // part.users < window_end:
                i = mine[at]
                key, events, identity = visits.of(i, start_ms + i * span_ms // part.users)
                shard = by_index[shard_of(key, part.shards)]
                pending.append(shard.enqueue_ingest(key, events, device=_device(key),
                                                    seq=1, identity=identity,
                                                    at_ms=events[-1].at_ms))
                counts["events"] += len(events)
                at += 1
            for key, events, device, seq in later.due(window_end):
                shard = by_index[shard_of(key, part.shards)]
                pending.append(shard.enqueue_ingest(key, events, device=device, seq=seq,
                                                    at_ms=events[-1].at_ms))
            await asyncio.gather(*pending)
            await _settle(shards)
            for shard in shards:
                await _deliver(shard, window_end, later)
        counts["users"] = at
    finally:
        for shard in shards:
            await shard.close()
    return {**counts, **later.counts}


async def _settle(shards: list[Shard]) -> None:
    """Until the timers the clock's last move made due have fired and committed: each shard's
    timer task queues its firing within a few turns of the loop, before the marker queued
    here, whose answer comes once everything before it has committed."""
    for _ in range(2):
        await asyncio.sleep(0.001)
        await asyncio.gather(*(shard.enqueue_position(0) for shard in shards))


async def _deliver(shard: Shard, now_ms: int, later: _Feedback) -> None:
    """Every queued email marked sent, as the dispatcher marks them; their opens, clicks and
    purchases planned."""
    rows = await shard.due_outbox(now_ms, 1_000_000)
    await asyncio.gather(*(shard.finish_outbox(row, "sent", None) for row in rows))
    for row in rows:
        later.plan(row, now_ms)


class _Feedback:
    """What recipients do later: open (as the tracking pixel applies it, deduplicated under the
    message's device), click, then buy (a batch of the user's own device)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._heap: list[tuple[int, int, str, list[Event], str, int]] = []
        self._order = itertools.count()
        self.counts = dict.fromkeys(("sent", "opened", "clicked", "bought"), 0)

    def plan(self, row: OutboxRow, sent_ms: int) -> None:
        self.counts["sent"] += 1
        rng = self._rng
        about: dict[str, PropValue] = {"message": row.message_key, "sequence": row.sequence,
                                       "step": row.step}
        if rng.random() >= _OPENED:
            return
        opened = sent_ms + rng.randint(60_000, 2 * _DAY_MS)
        self._add(opened, row.user_key, [Event("email_open", opened, about)],
                  feedback_device(row.message_key), 1, "opened")
        if rng.random() >= _CLICKED:
            return
        clicked = opened + rng.randint(1_000, 120_000)
        url = "https://shop.example/cart"
        self._add(clicked, row.user_key, [Event("email_click", clicked, {**about, "url": url})],
                  feedback_device(row.message_key), 2, "clicked")
        if rng.random() >= _BOUGHT:
            return
        bought = clicked + rng.randint(60_000, 1_800_000)
        order = f"order-{next(self._order)}"
        purchase: dict[str, PropValue] = {"order_id": order, "value_minor": 129_900,
                                          "currency": "EUR", "cart_id": ""}
        self._add(bought, row.user_key, [Event("purchase", bought, purchase)],
                  _device(row.user_key), 2 + next(self._order), "bought")

    def _add(self, at_ms: int, key: str, events: list[Event], device: str, seq: int,
             counter: str) -> None:
        heapq.heappush(self._heap, (at_ms, next(self._order), key, events, device, seq))
        self.counts[counter] += 1

    def due(self, now_ms: int) -> list[tuple[str, list[Event], str, int]]:
        out = []
        while self._heap and self._heap[0][0] < now_ms:
            _, _, key, events, device, seq = heapq.heappop(self._heap)
            out.append((key, events, device, seq))
        return out


class _Visits:
    """A shopper's one visit, decoded by the server's own decoder from collector events: of
    every hundred, 55 browse the home page and a category, 25 read a product page (browse
    abandonment), 8 also add to the cart (cart recovery), 6 go on to the checkout (checkout
    abandonment), 6 buy."""

    _KINDS = ((55, "browse"), (80, "product"), (88, "cart"), (94, "checkout"), (100, "buyer"))

    def __init__(self) -> None:
        self._templates = {(kind, sku): _decoded(_visit(kind, sku))
                           for _, kind in self._KINDS for sku in SKUS}

    def of(self, i: int, at_ms: int) -> tuple[str, list[Event], Identity]:
        bucket = i * 37 % 100
        kind = next(k for top, k in self._KINDS if bucket < top)
        key, email = fill_user(i)
        cart = f"cart-{i}"
        events = [Event(name, at_ms + offset,
                        {**props, "cart_id": cart} if "cart_id" in props else props, tz)
                  for name, offset, props, tz in self._templates[kind, SKUS[i % len(SKUS)]]]
        return key, events, Identity(email, True, key[2:], {"first_name": f"Shopper {i}"})


def _visit(kind: str, sku: str) -> list[CollectorEvent]:
    if kind == "browse":
        return [PageView(0, "/", "Shop", "https://search.example/"), Scroll(1_500, "/", 40),
                PageView(9_000, "/category/laptops", "Laptops", "/"),
                Scroll(12_000, "/category/laptops", 60),
                Dwell(20_000, "/category/laptops", 15_000)]
    path = f"/product/{sku}"
    events: list[CollectorEvent] = [
        PageView(0, path, sku.replace("-", " ").title(), "https://search.example/"),
        Custom(150, "product_view", (("sku", sku),)), Scroll(2_300, path, 25),
        Scroll(6_800, path, 50), Scroll(11_000, path, 75), Dwell(30_000, path, 30_000),
        Hover(31_200, path, f"product:{sku}", 1_200)]
    if kind in ("cart", "checkout", "buyer"):
        events.append(CartAdd(33_000, sku, 1, 129_900, "cart"))
    if kind in ("checkout", "buyer"):
        events.append(CheckoutStart(40_000, "cart", 129_900))
    if kind == "buyer":
        events.append(Purchase(60_000, "order", 129_900, "EUR", "cart"))
    return events


def _decoded(events: list[CollectorEvent]) -> list[tuple[str, int, dict[str, Any], str | None]]:
    """(name, ms after the visit starts, props, time zone) of each event, as ingest sees it."""
    base = 1_700_000_000_000
    data = header("fill", 1, base, None, 0) + body(events, "/")
    decoded = decode_batch(batch_pb2.Batch.FromString(data), SiteSettings(SITE_KEY, SITE_SECRET),
                           IngestSettings(), base + 3_600_000)
    return [(e.name, e.at_ms - base, dict(e.props), e.tz) for e in decoded.events]

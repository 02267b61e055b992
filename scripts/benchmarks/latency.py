"""Latencies: event -> durable commit, trigger -> email at the SMTP server, timer lateness.

  commit     unary Send calls paced at 20,000 events/s (200 batches of 100 a second, open
             loop), each call's send -> ack time as the client sees it: an ack means the
             batch's shard transaction committed. How far the client's sends fell behind their
             schedule is kept beside it, so a late client is not taken for a slow server.
  email      users, 50 a second, each one signed identify + cart_add batch through quick-cart
             (cart-recovery with a 1 s wait): the mail catcher's receipt time - (the client's
             send time + 1 s). The shard files split it: timer lateness (outbox row made - the
             step's due time) and dispatch (SMTP received - row made). A fresh server's first
             emails pay one-time costs, so ten go first (`cold`, reported apart); then once on
             the idle server, once more while a paced background load of 10,000 events/s runs.

The server's clock counts whole milliseconds and its timers sleep on the event loop (1 ms
resolution), so lateness under ~1 ms is not resolved.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import grpc

from collector.gen.pulsewire.v1 import batch_pb2
from scripts.benchmarks import server_stack
from scripts.benchmarks.load_client import LoadSpec, run_load
from scripts.benchmarks.server_stack import Server
from scripts.benchmarks.traffic import SITE_KEY, SITE_SECRET
from server.ingest.batches import sign_email
from server.rpc.gen.pulsewire.v1 import ingest_pb2_grpc

COMMIT_EVENTS_PER_S = 20_000
EMAIL_USERS_PER_S = 50
BACKGROUND_EVENTS_PER_S = 10_000
_BACKGROUND_LEAD_S = 2.0  # the background load runs this long before the carts start


def quantile(ordered: Sequence[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def commit(server: Server, duration_s: float) -> tuple[dict[str, Any], list[float]]:
    spec = LoadSpec("paced", server.target, duration_s, prefix="paced",
                    rate_batches_per_s=COMMIT_EVENTS_PER_S / 100)
    load = run_load(spec, server.pid)
    figures = _commit_figures(load, "commit")
    print(f"commit at {figures['commit_offered_events_per_s']:,} events/s offered: p50 "
          f"{figures['commit_p50_ms']} ms, p99 {figures['commit_p99_ms']} ms", flush=True)
    return figures, load["latencies_ms"]


def _commit_figures(load: dict[str, Any], name: str) -> dict[str, Any]:
    latencies = sorted(load["latencies_ms"])
    return {f"{name}_p50_ms": quantile(latencies, 0.50),
            f"{name}_p99_ms": quantile(latencies, 0.99),
            f"{name}_max_ms": round(latencies[-1], 1) if latencies else None,
            f"{name}_offered_events_per_s": round(load["offered"]),
            f"{name}_achieved_events_per_s": round(load["achieved"]),
            f"{name}_lost_batches": load["lost"],
            f"{name}_client_behind_p99_ms": quantile(load["behind_ms"], 0.99),
            f"{name}_server_cpu_pct": round(load["server_cpu_pct"])}


Samples = dict[str, list[int]]


def email(server: Server, users: int, round_name: str) -> tuple[dict[str, Any], Samples]:
    """Carts through quick-cart; their emails at the catcher, polled only once they are due."""
    sent_ms = asyncio.run(_send_carts(server.grpc_port, users, round_name))
    deadline = time.monotonic() + 30
    time.sleep(1.5)
    received: dict[str, int] = {}
    while len(received) < users and time.monotonic() < deadline:
        received = {m["envelope"]["to"][0]: m["received_ms"] for m in server_stack.get_json(
            server.mail_http_port, "/api/messages") if m["envelope"]["to"][0] in sent_ms}
        time.sleep(1.0)  # each poll makes the catcher send every message it holds
    latencies = sorted(received[e] - (sent_ms[e] + 1000) for e in received)
    late, dispatch = _split_from_shards(server.data_dir, received)
    tag = "" if round_name == "idle" else f"_{round_name}"
    print(f"email ({round_name}): {len(received)} of {users} arrived, p50 "
          f"{quantile(latencies, 0.5)} ms, p99 {quantile(latencies, 0.99)} ms", flush=True)
    figures = {f"email{tag}_users": users, f"email{tag}_arrived": len(received),
               f"email{tag}_p50_ms": quantile(latencies, 0.5),
               f"email{tag}_p99_ms": quantile(latencies, 0.99),
               f"email{tag}_max_ms": latencies[-1] if latencies else None,
               f"timer_lateness{tag}_p50_ms": quantile(late, 0.5),
               f"timer_lateness{tag}_p99_ms": quantile(late, 0.99),
               f"dispatch{tag}_p50_ms": quantile(dispatch, 0.5),
               f"dispatch{tag}_p99_ms": quantile(dispatch, 0.99)}
    return figures, {"email_ms": latencies, "timer_lateness_ms": late}


def email_under_load(server: Server, users: int) -> tuple[dict[str, Any], Samples]:
    """The email round again, while a paced background load keeps the server busy."""
    seconds = _BACKGROUND_LEAD_S + users / EMAIL_USERS_PER_S + 4  # past the last one due
    spec = LoadSpec("paced", server.target, seconds, prefix="background",
                    rate_batches_per_s=BACKGROUND_EVENTS_PER_S / 100)
    with ThreadPoolExecutor(1) as background:
        load = background.submit(run_load, spec, server.pid)
        time.sleep(_BACKGROUND_LEAD_S)
        figures, samples = email(server, users, "loaded")
        beside = _commit_figures(load.result(), "background_commit")
    return {**figures, "email_loaded_background_events_per_s": BACKGROUND_EVENTS_PER_S,
            "email_loaded_background_commit_p99_ms": beside["background_commit_p99_ms"]}, samples


async def _send_carts(grpc_port: int, users: int, round_name: str) -> dict[str, int]:
    """One signed identify + cart_add batch per user, paced; the client's send time in ms."""
    sent: dict[str, int] = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = ingest_pb2_grpc.IngestStub(channel)  # type: ignore[no-untyped-call]
        first, calls = time.perf_counter(), []
        for n in range(users):
            await asyncio.sleep(max(0.0, first + n / EMAIL_USERS_PER_S - time.perf_counter()))
            user = f"{round_name}-{n}"
            email = f"bench-mail-{user}@example.com"
            sent[email] = time.time_ns() // 1_000_000
            calls.append(stub.Send(_cart_batch(user, email, sent[email]), timeout=30))
        await asyncio.gather(*calls)
    return sent


def _cart_batch(user: str, email: str, now_ms: int) -> batch_pb2.Batch:
    batch = batch_pb2.Batch(site_key=SITE_KEY, device_id=f"mail-device-{user}", seq=1,
                            base_time_ms=now_ms, sent_at_ms=now_ms,
                            strings=["/cart", "premium-laptop", f"quick-{user}"])
    identify = batch.events.add().identify
    identify.user_id, identify.email = f"mail-user-{user}", email
    identify.signature = sign_email(SITE_SECRET, email)
    cart = batch.events.add().cart_add
    cart.sku, cart.qty, cart.price_minor, cart.cart_id = 1, 1, 189_900, 2
    return batch


def _split_from_shards(data_dir: Path, received: dict[str, int]) -> tuple[list[int], list[int]]:
    """Per email received: its outbox row's making - its step's due time (timer lateness), and
    SMTP received - row made (dispatch), from the shard files."""
    late, dispatch = [], []
    for path in sorted(data_dir.glob("shard-*.sqlite")):
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute(
                "SELECT o.email, s.at_ms, o.created_ms FROM outbox o JOIN send_log s"
                " ON s.message_key = o.message_key WHERE o.sequence = 'quick-cart'").fetchall()
        for email, due_ms, created_ms in rows:
            if email in received:
                late.append(created_ms - due_ms)
                dispatch.append(received[email] - created_ms)
    return sorted(late), sorted(dispatch)


def from_metrics(server: Server) -> dict[str, Any]:
    """Whole-run histograms from /metrics: the upper bound of the bucket holding the quantile."""
    text = server_stack.metrics(server)
    lateness_p99, lateness_count = _bucket_quantile(text, "pulsewire_timer_lateness_ms", 0.99)
    commit_p99, commits = _bucket_quantile(text, "pulsewire_commit_ms", 0.99)
    return {"timer_lateness_metrics_p99_le_ms": lateness_p99,
            "timer_lateness_metrics_count": lateness_count,
            "group_commit_metrics_p99_le_ms": commit_p99, "group_commits": commits}


def _bucket_quantile(text: str, histogram: str, q: float) -> tuple[float | None, int]:
    buckets = [(float(le), float(n)) for le, n in re.findall(
        rf'^{histogram}_bucket\{{le="([^"]+)"\}} (\S+)$', text, re.M)]
    total = buckets[-1][1] if buckets else 0.0
    bound = next((le for le, n in buckets if n >= q * total), None) if total else None
    return bound, int(total)

"""Segment-spec HTTP ingest: sustained load at `POST /v1/batch`, beside the gRPC ingest figure.

How this works: `measure(server, duration_s, warmup_s)` starts WORKERS client processes
(multiprocessing, spawn: the load never runs in the server's process), each holding
CONNECTIONS keep-alive HTTP/1.1 connections on raw asyncio streams under uvloop, one request in
flight on each, and samples the server's CPU from /proc meanwhile. Every request is a
server-side library's batch: MESSAGES messages of VISITORS visitors, each visitor's in time
order (page views, Product Viewed, now and then Product Added with product_id, price and
cart_id, an Order Completed), unique messageIds, ISO timestamps just before the batch's
sentAt, Basic auth with the site's public key. A third of the 4,000 visitors are signed in:
userId with an email and the site's signature in context.traits, as a browser vouched for by
the site sends them. Each connection owns its own visitors, so one visitor's messages are
never in flight twice. Answers that come inside the measured window (a wall-clock window the
workers share) count: `accepted` and `errors` from the JSON, any non-200 answer as an error.
"""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing
import random
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import uvloop

from collector.identity import sign_identity
from scripts.benchmarks import server_stack
from scripts.benchmarks.process_usage import Sample, sample, usage
from scripts.benchmarks.server_stack import Server
from scripts.benchmarks.traffic import SITE_KEY, SITE_SECRET, SKUS

WORKERS, CONNECTIONS = 2, 8
MESSAGES, VISITORS = 100, 20  # per request: 20 visitors, 5 messages each
DEVICES = 4000
_KINDS = ("page", "Product Viewed", "Product Added", "Order Completed")
_WEIGHTS = (45, 45, 8, 2)
_PRICES = {"premium-laptop": 1299.0, "ultrabook-13": 999.0, "anc-headphones": 249.0,
           "wireless-earbuds": 129.99}
_LIBRARY = {"name": "analytics-python", "version": "2.3.3"}


@dataclass(frozen=True)
class SegmentSpec:
    port: int
    window: tuple[float, float]  # wall clock: answers inside it count
    worker: int = 0
    workers: int = WORKERS
    connections: int = CONNECTIONS
    messages: int = MESSAGES
    visitors: int = VISITORS
    devices: int = DEVICES


def measure(server: Server, duration_s: float, warmup_s: float, *,
            grpc_events_per_s: float | None = None) -> dict[str, Any]:
    """Accepted events/s over `duration_s` after `warmup_s`, the errors, the server's CPU."""
    before = _counters(server_stack.metrics(server))
    start = time.time() + warmup_s
    specs = [SegmentSpec(server.http_port, (start, start + duration_s), worker=w)
             for w in range(WORKERS)]
    run = _run_workers(specs, server.pid)
    after = _counters(server_stack.metrics(server))
    shares = usage(run.samples, specs[0].window)
    tally, rate = run.tally, run.tally["accepted"] / duration_s
    errors = tally["errors"] + tally["not_200"]
    beside = ("" if grpc_events_per_s is None
              else f" beside gRPC ingest {grpc_events_per_s:,.0f} events/s")
    print(f"segment /v1/batch: {rate:,.0f} events/s ({MESSAGES} events a batch){beside}",
          flush=True)
    if errors or tally["late_start"]:
        print(f"warning: {tally['errors']} messages refused, {tally['not_200']} answers not 200, "
              f"{tally['late_start']} workers started after the window opened; first: "
              f"{run.problem}")
    stored, groups = after["events"] - before["events"], after["groups"] - before["groups"]
    return {"segment_batch_events_per_s": round(rate),
            "segment_batch_errors": errors,
            "segment_batch_seconds": duration_s,
            "segment_batch_requests_in_flight": WORKERS * CONNECTIONS,
            "segment_batch_request_p50_ms": round(run.p50_ms, 1),
            "segment_batch_server_cpu_pct": round(shares["server_cpu_pct"]),
            "segment_batch_client_cpu_pct": round(run.client_cpu_pct),
            "segment_batch_machine_busy_pct": round(shares["machine_busy_pct"]),
            # warmup included: /metrics says what the shards took, the answers what counted
            "segment_batch_server_events_in": round(stored),
            "segment_batch_events_per_group_commit": round(stored / max(groups, 1))}


@dataclass(frozen=True)
class _Run:
    tally: Counter[str]  # accepted, errors, not_200, late_start: summed over the workers
    p50_ms: float  # request -> answer
    client_cpu_pct: float  # the workers' together
    problem: str  # the first an answer named, if any
    samples: list[Sample]  # the server's, from /proc


def _run_workers(specs: list[SegmentSpec], server_pid: int) -> _Run:
    """Every spec's worker at once, the server sampled until each has answered."""
    context = multiprocessing.get_context("spawn")
    pipes = [context.Pipe(duplex=False) for _ in specs]
    workers = [(context.Process(target=_worker_main, args=(spec, send), daemon=True), receive)
               for spec, (receive, send) in zip(specs, pipes, strict=True)]
    deadline = specs[0].window[1] + 60  # a net for a stuck worker only
    samples = [sample(server_pid)]
    for process, _ in workers:
        process.start()
    results = []
    try:
        for process, receive in workers:
            while not receive.poll(0.5):
                samples.append(sample(server_pid))
                if time.time() > deadline or not (process.is_alive() or receive.poll()):
                    raise SystemExit("a Segment load worker failed")
            results.append(receive.recv())
    finally:
        for process, _ in workers:
            process.join(10)
            if process.is_alive():
                process.kill()
    samples.append(sample(server_pid))
    latencies = sorted(ms for r in results for ms in r["latencies_ms"])
    return _Run(sum((r["tally"] for r in results), Counter[str]()),
                latencies[len(latencies) // 2] if latencies else 0.0,
                sum(r["client_cpu_pct"] for r in results),
                next((r["problem"] for r in results if r["problem"]), ""), samples)


def _worker_main(spec: SegmentSpec, result_out: Any) -> None:
    result_out.send(uvloop.run(_worker(spec)))


async def _worker(spec: SegmentSpec) -> dict[str, Any]:
    cpu, began = time.process_time(), time.time()
    tally = Counter[str](late_start=int(began > spec.window[0]))
    latencies: list[float] = []
    problems: list[str] = []
    lanes = spec.workers * spec.connections
    await asyncio.gather(*(
        _connection(spec, _Visitors(spec, spec.worker * spec.connections + c, lanes), tally,
                    latencies, problems)
        for c in range(spec.connections)))
    seconds = max(time.time() - began, 1e-9)
    return {"tally": tally, "latencies_ms": latencies, "problem": problems[0] if problems else "",
            "client_cpu_pct": 100 * (time.process_time() - cpu) / seconds}


async def _connection(spec: SegmentSpec, visitors: _Visitors, tally: Counter[str],
                      latencies: list[float], problems: list[str]) -> None:
    """One keep-alive connection, one request in flight, until the window closes."""
    auth = base64.b64encode(f"{SITE_KEY}:".encode()).decode()
    head = (f"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1:{spec.port}\r\n"
            f"Authorization: Basic {auth}\r\nContent-Type: application/json\r\n"
            "Content-Length: {}\r\n\r\n")
    start, end = spec.window
    reader, writer = await asyncio.open_connection("127.0.0.1", spec.port)
    try:
        while (sent := time.time()) < end:
            body = visitors.request(sent)
            writer.write(head.format(len(body)).encode() + body)
            status, answer = await _response(reader)
            now = time.time()
            if not start <= now < end:
                continue
            latencies.append((now - sent) * 1000)
            if status != 200:
                tally["not_200"] += 1
                problems[:] = problems or [f"HTTP {status}: {answer[:200]!r}"]
                continue
            counts = json.loads(answer)
            tally["accepted"] += counts["accepted"]
            tally["errors"] += counts["errors"]
            problems[:] = problems or counts["problems"][:1]
    finally:
        writer.close()


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 answer with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    found = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
    return status, await reader.readexactly(int(found.group(1)) if found else 0)


class _Visitors:
    """Lane `lane` of `lanes`: every lanes-th of the devices, visited round robin, `visitors`
    a request. A visitor keeps its product; every third is signed in."""

    def __init__(self, spec: SegmentSpec, lane: int, lanes: int) -> None:
        self._rng = random.Random(lane)
        self._spec = spec
        self._ids = list(range(lane, spec.devices, lanes))
        self._anonymous = {i: f"anon-{self._rng.getrandbits(64):016x}-{i}" for i in self._ids}
        self._signed_in = {i: _signed_in(i) for i in self._ids if i % 3 == 0}
        self._next = 0
        self._sent = 0
        self._ids_from = f"seg-{int(spec.window[0])}-{lane}"  # unique per run and lane

    def request(self, now: float) -> bytes:
        per_visitor = self._spec.messages // self._spec.visitors
        messages = []
        for v in range(self._spec.visitors):
            who = self._ids[(self._next + v) % len(self._ids)]
            for m in range(per_visitor):
                at = now - 0.02 * (per_visitor - m)  # a visitor's messages in time order
                messages.append(self._message(who, at))
        self._next += self._spec.visitors
        return json.dumps({"batch": messages, "sentAt": _iso(now)},
                          separators=(",", ":")).encode()

    def _message(self, who: int, at: float) -> dict[str, Any]:
        self._sent += 1
        rng, sku = self._rng, SKUS[who % len(SKUS)]
        kind = rng.choices(_KINDS, _WEIGHTS)[0]
        message: dict[str, Any] = {
            "type": "page" if kind == "page" else "track",
            "anonymousId": self._anonymous[who],
            "messageId": f"{self._ids_from}-{self._sent}", "timestamp": _iso(at),
            "context": {"library": _LIBRARY}}
        if who in self._signed_in:
            message["userId"], message["context"] = self._signed_in[who]
        if kind == "page":
            message["properties"] = {"path": f"/product/{sku}", "referrer":
                                     "https://search.example/", "title": sku.title()}
        else:
            message["event"] = kind
            message["properties"] = _properties(kind, sku, who, self._sent)
        return message


def _signed_in(who: int) -> tuple[str, dict[str, Any]]:
    """A user id and the context that vouches for it: the email and the site's signature."""
    user, email = f"seg-user-{who}", f"seg-{who}@bench.example"
    return user, {"library": _LIBRARY, "traits": {
        "email": email, "signature": sign_identity(SITE_SECRET, user, email)}}


def _properties(kind: str, sku: str, who: int, sent: int) -> dict[str, Any]:
    price = _PRICES[sku]
    if kind == "Product Viewed":
        return {"product_id": sku, "name": sku.title(), "price": price, "currency": "USD"}
    cart = f"cart-{who}-{sent // 1000}"
    if kind == "Product Added":
        return {"product_id": sku, "price": price, "quantity": 1, "cart_id": cart}
    return {"order_id": f"order-{who}-{sent}", "total": price, "revenue": price,
            "currency": "USD", "cart_id": cart,
            "products": [{"product_id": sku, "price": price, "quantity": 1}]}


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _counters(text: str) -> dict[str, float]:
    def value(name: str) -> float:
        found = re.search(rf"^{name} (\S+)$", text, re.M)
        return float(found.group(1)) if found else 0.0

    return {"events": value("pulsewire_events_in_total"),
            "groups": value("pulsewire_commit_ms_count")}

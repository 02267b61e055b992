"""The load generator: a gRPC client in its own process (grpc.aio under uvloop).

`run_load(spec, server_pid)` starts it (multiprocessing, spawn: a fresh interpreter that
imports only this module and what it needs), samples the server's RSS and CPU from /proc
while it runs, and returns what it measured. Kinds of load:

  sustained  `streams` Stream calls, each with `window` batches in flight, as fast as acks
             come, for `warmup_s + duration_s`; acks inside the last `duration_s` count, in
             total and second by second. With `more_targets` (a cluster's other nodes) the
             streams are spread over every target in turn.
  paced      unary Send calls at `rate_batches_per_s` (open loop: a send never waits for an
             earlier ack); each call's send -> ack latency, and how far sends fell behind
             their schedule (the generator's own lateness, to tell it from the server's).
  users      `Visits` of `users` users over Stream calls: every user's first batch, then
             the sign-in batches, so each merge finds the device's history there.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc
import uvloop

from collector.gen.pulsewire.v1 import batch_pb2
from scripts.benchmarks.process_usage import Sample, sample, usage
from scripts.benchmarks.traffic import Traffic, Visits

STREAM, SEND = "/pulsewire.v1.Ingest/Stream", "/pulsewire.v1.Ingest/Send"
STREAMS, WINDOW = 8, 32


@dataclass(frozen=True)
class LoadSpec:
    kind: str  # sustained, paced or users
    target: str
    duration_s: float = 0.0
    warmup_s: float = 0.0
    streams: int = STREAMS
    window: int = WINDOW
    events_per_batch: int = 100
    rate_batches_per_s: float = 0.0
    users: int = 0
    prefix: str = "dev"
    devices: int = 4000
    seed: int = 1
    more_targets: tuple[str, ...] = ()  # sustained: further servers that take streams


def run_load(spec: LoadSpec, server_pid: int) -> dict[str, Any]:
    """Run the generator in its own process, sampling the server's RSS and CPU meanwhile."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_load_main, args=(spec, send), daemon=True)
    # a net for a stuck client only: a loaded machine takes new users a few hundred a second
    deadline = time.monotonic() + spec.warmup_s + spec.duration_s + 90 + spec.users / 50
    samples: list[Sample] = [sample(server_pid)]
    process.start()
    try:
        while not receive.poll(0.5):
            samples.append(sample(server_pid))
            if not process.is_alive() or time.monotonic() > deadline:
                raise SystemExit(f"the load generator failed ({spec.kind}, {spec.target})")
        result: dict[str, Any] = receive.recv()
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)
    samples.append(sample(server_pid))
    return {**result, **usage(samples, result["window"])}


def _load_main(spec: LoadSpec, result_out: Any) -> None:
    drive = {"sustained": _sustained, "paced": _paced, "users": _users}[spec.kind]
    result_out.send(uvloop.run(drive(spec)))


async def _sustained(spec: LoadSpec) -> dict[str, Any]:
    traffic = Traffic(spec.prefix, spec.devices, spec.events_per_batch, spec.seed)
    tally = Counter[str]()
    began, cpu = time.monotonic(), time.process_time()
    start = began + spec.warmup_s
    end = start + spec.duration_s
    channels = [grpc.aio.insecure_channel(t) for t in (spec.target, *spec.more_targets)]
    try:
        opens = [c.stream_stream(STREAM, response_deserializer=batch_pb2.Ack.FromString)
                 for c in channels]
        drivers = [_drive_stream(opens[i % len(opens)], traffic.batch, spec.window,
                                 (start, end), tally) for i in range(spec.streams)]
        await asyncio.wait_for(asyncio.gather(*drivers), spec.warmup_s + spec.duration_s + 60)
    finally:
        for channel in channels:
            await channel.close()
    by_second = [tally[f"second {s}"] for s in range(int(spec.duration_s))]
    return {"events_per_s": tally["events"] / spec.duration_s, "by_second": by_second,
            **_tally(tally), "window": _wall((start, end)),
            "generator_cpu_pct": _cpu_pct(cpu, began)}


async def _users(spec: LoadSpec) -> dict[str, Any]:
    visits = Visits(spec.prefix, spec.users, spec.seed)
    tally = Counter[str]()
    part_s: list[float] = []
    began, cpu = time.monotonic(), time.process_time()
    async with grpc.aio.insecure_channel(spec.target) as channel:
        open_stream = channel.stream_stream(STREAM, response_deserializer=batch_pb2.Ack.FromString)
        for part, in_part in enumerate(visits.parts):
            part_began, users = time.monotonic(), iter(in_part)

            def next_batch(part: int = part, users: Any = users) -> bytes | None:
                user = next(users, None)
                return None if user is None else visits.batch(user, part)

            await asyncio.gather(*(
                _drive_stream(open_stream, next_batch, spec.window, (began, float("inf")), tally)
                for _ in range(spec.streams)))
            part_s.append(time.monotonic() - part_began)
    seconds = time.monotonic() - began
    return {"events": tally["events"], "seconds": seconds, "part_s": part_s, **_tally(tally),
            "window": _wall((began, began + seconds)), "generator_cpu_pct": _cpu_pct(cpu, began)}


async def _drive_stream(open_stream: Any, next_batch: Callable[[], bytes | None], window: int,
                        measured: tuple[float, float], tally: Counter[str]) -> None:
    """One Stream call with `window` batches in flight until the end of `measured` or of the
    batches; acks received inside `measured` count."""
    start, end = measured
    call = open_stream()
    slots = asyncio.Semaphore(window)

    async def write() -> None:
        while time.monotonic() < end:
            await slots.acquire()
            batch = next_batch()
            if batch is None:
                break
            await call.write(batch)
        await call.done_writing()

    writer = asyncio.create_task(write())
    async for ack in call:
        slots.release()
        now = time.monotonic()
        if ack.HasField("rejection"):
            tally["rejected"] += 1
        elif ack.duplicate:
            tally["duplicate"] += 1
        elif start <= now < end:
            tally["events"] += ack.accepted
            tally[f"second {int(now - start)}"] += ack.accepted
    await writer


async def _paced(spec: LoadSpec) -> dict[str, Any]:
    traffic = Traffic(spec.prefix, spec.devices, spec.events_per_batch, spec.seed)
    latencies_ms: list[float] = []
    behind_ms: list[float] = []
    acked, last_ack = 0, 0.0
    async with grpc.aio.insecure_channel(spec.target) as channel:
        send = channel.unary_unary(SEND, response_deserializer=batch_pb2.Ack.FromString)

        async def one(payload: bytes, due: float) -> None:
            nonlocal acked, last_ack
            sent = time.perf_counter()
            behind_ms.append((sent - due) * 1000)
            ack = await send(payload, timeout=30)
            last_ack = time.perf_counter()
            latencies_ms.append((last_ack - sent) * 1000)
            acked += ack.accepted

        first, count = time.perf_counter(), int(spec.rate_batches_per_s * spec.duration_s)
        cpu, began, wall = time.process_time(), time.monotonic(), time.time()
        calls: set[asyncio.Task[None]] = set()
        for i in range(count):
            due = first + i / spec.rate_batches_per_s
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            calls.add(asyncio.create_task(one(traffic.batch(), due)))
        offered_s = time.perf_counter() - first
        await asyncio.wait(calls, timeout=30)
    return {"latencies_ms": latencies_ms, "behind_ms": sorted(behind_ms),
            "offered": count * spec.events_per_batch / offered_s,
            "achieved": acked / max(last_ack - first, 1e-9), "lost": count - len(latencies_ms),
            "window": (wall, wall + offered_s), "generator_cpu_pct": _cpu_pct(cpu, began)}


def _tally(tally: Counter[str]) -> dict[str, int]:
    return {"rejected": tally["rejected"], "duplicate": tally["duplicate"]}


def _wall(window: tuple[float, float]) -> tuple[float, float]:
    """A monotonic-clock window on the wall clock (the /proc samples' clock)."""
    to_wall = time.time() - time.monotonic()
    return window[0] + to_wall, window[1] + to_wall


def _cpu_pct(cpu_at_start: float, began: float) -> float:
    return 100 * (time.process_time() - cpu_at_start) / max(time.monotonic() - began, 1e-9)

"""Benchmark the running server: ingest rate, commit latency, email latency, timer lateness.

    scripts/bench server             # about 2.5 minutes
    scripts/bench server --quick     # under 90 s
    scripts/bench server --profile   # also samples the server with py-spy during ingest

Real parts, each in its own OS process: the server (`python -m server.cli serve`, 8 shards, a
temporary data dir, the example catalog imported), the mail catcher it sends to (`pulsewire
mailcatcher`), a load generator (a process of this script: grpc.aio under uvloop) and, for the
bare limit, a grpc.aio server whose Stream handler only decodes batches and acks them. All of
them share the machine's cores, so every figure includes the load generator's own cost.

The load: batches of 100 events (page_view, scroll, dwell, hover, custom product_view, now and
then cart_add or purchase; the page's path at string index 0) from a pool of devices, a third of
them identified users with signed emails. Batch bodies are built and serialized once; each send
prepends a fresh header (device, seq, times, identity), so the server sees every batch as new.

Measured:
  ingest     acked events/s over 8 Stream calls (--streams) with 32 batches in flight on each
             (--window), for 60 s (--quick: 10 s) after a warm-up; the server's RSS (VmRSS)
             before and after, and its CPU, the generator's and the machine's over the window.
  commit     send -> ack latency of unary Send calls paced at 20,000 events/s (200 batches/s),
             for 20 s (5 s): event -> durable commit as a collector sees it; offered vs
             achieved rate.
  email      for 200 (50) users, one signed identify + cart_add batch each (50 users/s), through
             quick-cart (cart-recovery with a 1 s wait): the catcher's received_ms - (client
             send time + 1 s). The shard files split it: timer lateness (outbox row created -
             the step's due time) and dispatch (SMTP received - row created). Once on the idle
             server, once more under a paced background load of 10,000 events/s.
  timers     p99 of pulsewire_timer_lateness_ms from the server's /metrics (bucket bounds).
  bare       the ingest load against the decode-and-ack-only server: grpc.aio's own limit here.

quick-cart enters only on carts whose cart_id starts "quick-", so the load's carts never mail
and the ingest figures are ingest alone. The server's clock counts whole milliseconds and its
timers sleep on the event loop (1 ms resolution), so lateness under ~1 ms is not resolved.
--profile samples the server with py-spy during the ingest phase, only the thread holding the
GIL (the one core Python code can use), into bench/server-profile.txt (collapsed stacks, for
speedscope or inferno), and prints the top functions; it slows the server, so the run's figures
are marked `profiled`. Each run appends a line to bench/server.jsonl; nothing else in the tree
is written. One file, though long: the processes it spawns re-import it, and `scripts/bench
server` runs one script.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import uvloop

from collector.gen.pulsewire.v1 import batch_pb2
from server.rpc.batches import sign_email
from server.rpc.gen.pulsewire.v1 import ingest_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench"
EXAMPLES = REPO / "examples"
SITE_KEY, SITE_SECRET = "bench", "bench-secret"
STREAM, SEND = "/pulsewire.v1.Ingest/Stream", "/pulsewire.v1.Ingest/Send"
EVENTS_PER_BATCH = 100
STREAMS, WINDOW = 8, 32  # defaults of --streams and --window
COMMIT_EVENTS_PER_S = 20_000
EMAIL_USERS_PER_S = 50
EMAIL_UNDER_LOAD_AFTER_S = 2.0
EMAIL_BACKGROUND_EVENTS_PER_S = 10_000
START_TIMEOUT_S = 30.0
READY = re.compile(r"pulsewire: gRPC on [^:\s]+:(\d+)")


@dataclass(frozen=True)
class Plan:
    ingest_s: float
    warmup_s: float
    commit_s: float
    email_users: int
    bare_s: float
    streams: int = STREAMS
    window: int = WINDOW

    @classmethod
    def of(cls, args: argparse.Namespace) -> Plan:
        phases = (10, 2, 5, 50, 5) if args.quick else (60, 5, 20, 200, 15)
        return cls(*phases, streams=args.streams, window=args.window)


def main() -> int:
    args = _arguments()
    plan = Plan.of(args)
    RESULTS.mkdir(exist_ok=True)
    print(f"{os.cpu_count()} cores, shared by the server, the load generator and the mail "
          "catcher: every figure includes the generator's own cost", flush=True)
    bare_events_per_s = _measure_bare(plan)
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="pulsewire-bench-") as tmp:
        server = _start_stack(stack, Path(tmp))
        results = _measure(server, plan, args.profile)
    results["grpc_decode_only_events_per_s"] = round(bare_events_per_s)
    _print(results, plan)
    _record(results, plan, args)
    return 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases, under 90 s")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the server during ingest (its figures then suffer): "
                             "bench/server-profile.txt and the top functions")
    parser.add_argument("--streams", type=int, default=STREAMS,
                        help=f"Stream calls of the ingest load (default {STREAMS})")
    parser.add_argument("--window", type=int, default=WINDOW,
                        help=f"batches in flight on each (default {WINDOW})")
    return parser.parse_args()


# ---- the parts, each its own process ---------------------------------------------------------

@dataclass(frozen=True)
class Server:
    pid: int
    grpc_port: int
    http_port: int
    mail_http_port: int
    data_dir: Path


def _start_stack(stack: ExitStack, tmp: Path) -> Server:
    smtp_port, mail_http, http_port = _free_port(), _free_port(), _free_port()
    mail = _spawn(stack, ["mailcatcher", "--smtp", f"127.0.0.1:{smtp_port}",
                          "--http", f"127.0.0.1:{mail_http}", "--store", str(tmp / "mail")],
                  tmp / "mailcatcher")
    config = _write_config(tmp, smtp_port, http_port)
    subprocess.run([sys.executable, "-m", "server.cli", "catalog", "import", "--config",
                    str(config), str(EXAMPLES / "catalog.csv")], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL, timeout=START_TIMEOUT_S)
    server = _spawn(stack, ["serve", "--config", str(config), "--log-level", "warning"],
                    tmp / "server", env={"PULSEWIRE_INGEST__SITE_EVENTS_PER_S": "1e12",
                                         "PULSEWIRE_INGEST__SITE_BURST_EVENTS": "1000000000000"})
    _wait_for_output(mail, tmp / "mailcatcher.out", re.compile(r"mailcatcher: SMTP on"))
    grpc_port = int(_wait_for_output(server, tmp / "server.out", READY).group(1))
    return Server(server.pid, grpc_port, http_port, mail_http, tmp / "data")


def _write_config(tmp: Path, smtp_port: int, http_port: int) -> Path:
    sequences = tmp / "sequences"
    sequences.mkdir()
    for name in ("cart-recovery.yaml", "browse-abandonment.yaml"):
        shutil.copy(EXAMPLES / "sequences" / name, sequences / name)
    (sequences / "quick-cart.yaml").write_text(_quick_cart())
    config = tmp / "bench.toml"
    config.write_text(f"""
[server]
grpc_listen = "127.0.0.1:0"
http_listen = "127.0.0.1:{http_port}"
public_url = "http://127.0.0.1:{http_port}"
data_dir = "{tmp / 'data'}"
shards = 8

[sequences]
dir = "{sequences}"

[templates]
dir = "{EXAMPLES / 'templates'}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}

[[sites]]
key = "{SITE_KEY}"
secret = "{SITE_SECRET}"
""")
    return config


def _quick_cart() -> str:
    """cart-recovery with a 1 s wait, entered only by the email phase's carts."""
    text = (EXAMPLES / "sequences" / "cart-recovery.yaml").read_text()
    swaps = [("id: cart-recovery", "id: quick-cart"), ("timeout: 60m", "timeout: 1s"),
             ("  event: cart_add\n", "  event: cart_add\n  where: {cart_id: quick-*}\n")]
    for old, new in swaps:
        if old not in text:
            raise SystemExit(f"examples/sequences/cart-recovery.yaml changed: no {old!r}")
        text = text.replace(old, new)
    return text


def _spawn(stack: ExitStack, argv: list[str], log: Path,
           env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    out, err = log.with_suffix(".out").open("wb"), log.with_suffix(".err").open("wb")
    child = subprocess.Popen([sys.executable, "-m", "server.cli", *argv], cwd=REPO, stdout=out,
                             stderr=err, env={**os.environ, **(env or {})})
    out.close()
    err.close()
    stack.callback(_stop, child, log.with_suffix(".err"))
    return child


def _stop(child: subprocess.Popen[bytes] | multiprocessing.process.BaseProcess,
          errors: Path | None = None) -> None:
    """Terminate, give it time to drain, then kill; show its stderr if it failed."""
    code: int | None
    if isinstance(child, subprocess.Popen):
        child.terminate()
        try:
            code = child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            code = child.wait(5)
    else:
        child.terminate()
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join(5)
        code = child.exitcode
    text = errors.read_text().strip() if errors and errors.exists() else ""
    if code not in (0, -15) and text:
        print(f"{errors.name if errors else 'child'} (exit {code}):\n{text[-2000:]}")


def _wait_for_output(child: subprocess.Popen[bytes], out: Path,
                     pattern: re.Pattern[str]) -> re.Match[str]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if found := pattern.search(out.read_text()):
            return found
        if child.poll() is not None:
            err = out.with_suffix(".err").read_text()
            raise SystemExit(f"{child.args!r} exited {child.returncode}:\n{err[-3000:]}")
        time.sleep(0.05)
    raise SystemExit(f"{child.args!r} not ready in {START_TIMEOUT_S:g} s")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _measure_bare(plan: Plan) -> float:
    """The ingest load against a server that only decodes and acks: grpc.aio's limit."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_bare_main, args=(send,), daemon=True)
    process.start()
    try:
        if not receive.poll(START_TIMEOUT_S) or process.pid is None:
            raise SystemExit("the bare gRPC server did not start")
        target = f"127.0.0.1:{receive.recv()}"
        load = _run_load(LoadSpec("sustained", target, plan.bare_s, plan.warmup_s, plan.streams,
                                  plan.window, prefix="bare"), process.pid)
    finally:
        _stop(process)
    print(f"bare grpc.aio decode + ack: {load['events_per_s']:,.0f} events/s", flush=True)
    return float(load["events_per_s"])


class _BareIngest(ingest_pb2_grpc.IngestServicer):
    """grpc.aio's own cost: decode each batch (done by grpc with Batch.FromString), ack it."""

    async def Stream(self, request_iterator: Any, context: Any) -> Any:
        async for batch in request_iterator:
            yield batch_pb2.Ack(seq=batch.seq, accepted=len(batch.events))


def _bare_main(port_out: Any) -> None:
    async def serve() -> None:
        server = grpc.aio.server()
        ingest_pb2_grpc.add_IngestServicer_to_server(_BareIngest(), server)  # type: ignore[no-untyped-call]
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        port_out.send(port)
        await server.wait_for_termination()

    uvloop.run(serve())


# ---- the load generator: its own process -------------------------------------------------------

@dataclass(frozen=True)
class LoadSpec:
    kind: str  # sustained: Stream calls, as fast as acks come; paced: unary Send at a rate
    target: str
    duration_s: float
    warmup_s: float = 0.0
    streams: int = STREAMS
    window: int = WINDOW
    rate_batches_per_s: float = 0.0
    prefix: str = "dev"
    devices: int = 4000
    seed: int = 1


class Traffic:
    """Unique batches from a pool of devices: a body built once, a header built per send.
    Concatenated protobuf messages parse as one, so header bytes + body bytes is a Batch."""

    def __init__(self, spec: LoadSpec) -> None:
        rng = random.Random(spec.seed)
        self._bodies = [_body(rng) for _ in range(200)]
        self._devices = [f"{spec.prefix}-{rng.getrandbits(48):012x}-{i}"
                         for i in range(spec.devices)]
        self._identities = [_identity(spec.prefix, i) if i % 3 == 0 else None
                            for i in range(spec.devices)]
        self._seqs = [0] * spec.devices
        self._sent = 0

    def batch(self) -> bytes:
        device, self._sent = self._sent % len(self._devices), self._sent + 1
        self._seqs[device] += 1
        body, span_ms = self._bodies[self._sent % len(self._bodies)]
        now = time.time_ns() // 1_000_000
        head = batch_pb2.Batch(site_key=SITE_KEY, device_id=self._devices[device],
                               seq=self._seqs[device], base_time_ms=now - span_ms, sent_at_ms=now,
                               identity=self._identities[device])
        header: bytes = head.SerializeToString()
        return header + body


def _identity(prefix: str, i: int) -> batch_pb2.Identity:
    email = f"{prefix}-{i}@bench.example"
    return batch_pb2.Identity(user_id=f"{prefix}-user-{i}", email=email,
                              signature=sign_email(SITE_SECRET, email))


_KINDS = ("page_view", "scroll", "dwell", "hover", "product_view", "cart_add", "purchase")
_WEIGHTS = (8, 30, 15, 27, 18, 1.5, 0.5)
_SKUS = ("premium-laptop", "ultrabook-13", "anc-headphones", "wireless-earbuds")


def _body(rng: random.Random) -> tuple[bytes, int]:
    """Strings, 100 events and a context, serialized; and the events' time span in ms."""
    sku = rng.choice(_SKUS)
    strings = [f"/product/{sku}", sku.replace("-", " ").title(), "https://search.example/",
               "add-to-cart", "product_view", "sku", sku, f"cart-{rng.getrandbits(32):x}",
               f"order-{rng.getrandbits(32):x}", "USD"]
    body = batch_pb2.Batch(strings=strings)
    body.context.timezone, body.context.collector = "Europe/Berlin", "bench/1"
    span_ms = 0
    for kind in rng.choices(_KINDS, _WEIGHTS, k=EVENTS_PER_BATCH):
        event = body.events.add(dt_ms=rng.randint(20, 400))
        span_ms += event.dt_ms
        _fill(event, kind, rng)
    return body.SerializeToString(), span_ms


def _fill(event: Any, kind: str, rng: random.Random) -> None:
    if kind == "page_view":
        event.page_view.SetInParent()
        event.page_view.title, event.page_view.referrer = 1, 2
    elif kind == "scroll":
        event.scroll.depth_pct = rng.randint(1, 100)
    elif kind == "dwell":
        event.dwell.engaged_ms = rng.randint(500, 30_000)
    elif kind == "hover":
        event.hover.target, event.hover.ms = 3, rng.randint(100, 3000)
    elif kind == "product_view":
        event.custom.name = 4
        event.custom.props.add(key=5, str=6)
    elif kind == "cart_add":
        event.cart_add.sku, event.cart_add.qty, event.cart_add.cart_id = 6, 1, 7
        event.cart_add.price_minor = 12_999
    else:
        event.purchase.order_id, event.purchase.value_minor = 8, 12_999
        event.purchase.currency, event.purchase.cart_id = 9, 7


def _load_main(spec: LoadSpec, result_out: Any) -> None:
    drive = _sustained if spec.kind == "sustained" else _paced
    result_out.send(uvloop.run(drive(spec, Traffic(spec))))


async def _sustained(spec: LoadSpec, traffic: Traffic) -> dict[str, Any]:
    tally = Counter[str]()
    began, cpu = time.monotonic(), time.process_time()
    start = began + spec.warmup_s
    end = start + spec.duration_s
    async with grpc.aio.insecure_channel(spec.target) as channel:
        open_stream = channel.stream_stream(STREAM, response_deserializer=batch_pb2.Ack.FromString)
        drivers = [_drive_stream(open_stream, traffic, spec.window, (start, end), tally)
                   for _ in range(spec.streams)]
        await asyncio.wait_for(asyncio.gather(*drivers), spec.warmup_s + spec.duration_s + 30)
    to_wall = time.time() - time.monotonic()
    return {"events_per_s": tally["events"] / spec.duration_s, "rejected": tally["rejected"],
            "duplicate": tally["duplicate"], "window": (start + to_wall, end + to_wall),
            "generator_cpu_pct": 100 * (time.process_time() - cpu) / (time.monotonic() - began)}


async def _drive_stream(open_stream: Any, traffic: Traffic, window: int,
                        measured: tuple[float, float], tally: Counter[str]) -> None:
    """One Stream call with `window` batches in flight; acks inside `measured` count."""
    start, end = measured
    call = open_stream()
    slots = asyncio.Semaphore(window)

    async def write() -> None:
        while time.monotonic() < end:
            await slots.acquire()
            await call.write(traffic.batch())
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
    await writer


async def _paced(spec: LoadSpec, traffic: Traffic) -> dict[str, Any]:
    latencies_ms: list[float] = []
    acked, last_ack = 0, 0.0
    async with grpc.aio.insecure_channel(spec.target) as channel:
        send = channel.unary_unary(SEND, response_deserializer=batch_pb2.Ack.FromString)

        async def one(payload: bytes) -> None:
            nonlocal acked, last_ack
            sent = time.perf_counter()
            ack = await send(payload, timeout=30)
            last_ack = time.perf_counter()
            latencies_ms.append((last_ack - sent) * 1000)
            acked += ack.accepted

        first, count = time.perf_counter(), int(spec.rate_batches_per_s * spec.duration_s)
        cpu, wall = time.process_time(), time.time()
        calls: set[asyncio.Task[None]] = set()
        for i in range(count):
            if (delay := first + i / spec.rate_batches_per_s - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            calls.add(asyncio.create_task(one(traffic.batch())))
        offered_s = time.perf_counter() - first
        await asyncio.wait(calls, timeout=30)
    return {"latencies_ms": latencies_ms, "offered": count * EVENTS_PER_BATCH / offered_s,
            "achieved": acked / max(last_ack - first, 1e-9), "lost": count - len(latencies_ms),
            "window": (wall, wall + offered_s),
            "generator_cpu_pct": 100 * (time.process_time() - cpu) / (time.perf_counter() - first)}


def _run_load(spec: LoadSpec, server_pid: int) -> dict[str, Any]:
    """Run the generator in its own process, sampling the server's RSS and CPU meanwhile."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_load_main, args=(spec, send), daemon=True)
    deadline = time.monotonic() + spec.warmup_s + spec.duration_s + 90
    samples = [_sample(server_pid)]
    process.start()
    try:
        while not receive.poll(0.5):
            samples.append(_sample(server_pid))
            if not process.is_alive() or time.monotonic() > deadline:
                raise SystemExit(f"the load generator failed ({spec.kind}, {spec.target})")
        result: dict[str, Any] = receive.recv()
    finally:
        _stop(process)
    samples.append(_sample(server_pid))
    return {**result, **_usage(samples, result["window"])}


# ---- what the server process uses -----------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    at: float
    rss_mb: float
    cpu_s: float  # the process's user + system time
    machine_busy_s: float  # every core's non-idle time


def _sample(pid: int) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(stat[11]) + int(stat[12])) / ticks
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    busy = (user + nice + system + irq + softirq + steal) / ticks
    return Sample(time.time(), rss_kb / 1024, cpu, busy)


def _usage(samples: list[Sample], window: tuple[float, float]) -> dict[str, float]:
    inside = [s for s in samples if window[0] <= s.at <= window[1]] or samples
    first, last = inside[0], inside[-1]
    span = max(last.at - first.at, 1e-9)
    return {"rss_start_mb": samples[0].rss_mb, "rss_end_mb": samples[-1].rss_mb,
            "rss_peak_mb": max(s.rss_mb for s in samples),
            "server_cpu_pct": 100 * (last.cpu_s - first.cpu_s) / span,
            "machine_busy_pct": 100 * (last.machine_busy_s - first.machine_busy_s) / span}


# ---- the phases -------------------------------------------------------------------------------

def _measure(server: Server, plan: Plan, profile: bool) -> dict[str, Any]:
    """Email on the idle server, ingest, commit latency, then email again under load."""
    idle = _email_phase(server, plan.email_users, "idle", "")
    target = f"127.0.0.1:{server.grpc_port}"
    profiler = _start_profiler(server.pid, plan) if profile else None
    ingest = _run_load(LoadSpec("sustained", target, plan.ingest_s, plan.warmup_s, plan.streams,
                                plan.window), server.pid)
    if profiler is not None:
        _finish_profiler(profiler, plan)
    time.sleep(1)
    commit = _run_load(LoadSpec("paced", target, plan.commit_s, prefix="paced",
                                rate_batches_per_s=COMMIT_EVENTS_PER_S / EVENTS_PER_BATCH),
                       server.pid)
    loaded = _email_under_load(server, plan)
    return {**idle, **loaded, **_ingest_figures(ingest), **_commit_figures(commit),
            **_metric_figures(_scrape(server.http_port))}


def _email_under_load(server: Server, plan: Plan) -> dict[str, Any]:
    """The email round again, while a paced background load keeps the server busy."""
    seconds = EMAIL_UNDER_LOAD_AFTER_S + plan.email_users / EMAIL_USERS_PER_S + 6
    spec = LoadSpec("paced", f"127.0.0.1:{server.grpc_port}", seconds, prefix="background",
                    rate_batches_per_s=EMAIL_BACKGROUND_EVENTS_PER_S / EVENTS_PER_BATCH)
    with ThreadPoolExecutor(1) as background:
        load = background.submit(_run_load, spec, server.pid)
        time.sleep(EMAIL_UNDER_LOAD_AFTER_S)  # the generator has started and is sending
        figures = _email_phase(server, plan.email_users, "loaded", "_loaded")
        background_commit = _commit_figures(load.result())
    return {**figures, "email_loaded_background_commit_p50_ms": background_commit["commit_p50_ms"],
            "email_loaded_background_commit_p99_ms": background_commit["commit_p99_ms"]}


def _ingest_figures(load: dict[str, Any]) -> dict[str, Any]:
    if load["rejected"] or load["duplicate"]:
        print(f"warning: {load['rejected']} batches rejected, {load['duplicate']} duplicates")
    return {"ingest_events_per_s": round(load["events_per_s"]),
            "server_rss_start_mb": round(load["rss_start_mb"], 1),
            "server_rss_end_mb": round(load["rss_end_mb"], 1),
            "server_rss_peak_mb": round(load["rss_peak_mb"], 1),
            "ingest_server_cpu_pct": round(load["server_cpu_pct"]),
            "ingest_generator_cpu_pct": round(load["generator_cpu_pct"]),
            "ingest_machine_busy_pct": round(load["machine_busy_pct"])}


def _commit_figures(load: dict[str, Any]) -> dict[str, Any]:
    latencies = sorted(load["latencies_ms"])
    return {"commit_p50_ms": _quantile(latencies, 0.50),
            "commit_p99_ms": _quantile(latencies, 0.99),
            "commit_max_ms": round(latencies[-1], 1) if latencies else None,
            "commit_offered_events_per_s": round(load["offered"]),
            "commit_achieved_events_per_s": round(load["achieved"]),
            "commit_lost_batches": load["lost"],
            "commit_server_cpu_pct": round(load["server_cpu_pct"])}


def _quantile(ordered: Sequence[float], q: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


_EMAIL_KEYS = ("email{}_users", "email{}_arrived", "email{}_p50_ms", "email{}_p99_ms",
               "email{}_max_ms", "timer_lateness{}_p50_ms", "timer_lateness{}_p99_ms",
               "dispatch{}_p50_ms", "dispatch{}_p99_ms")


def _email_phase(server: Server, users: int, round_name: str, tag: str) -> dict[str, Any]:
    """Carts through quick-cart; wait for their emails at the catcher (polling only once
    they are due, so the polling costs the server's cores little). Keys: _EMAIL_KEYS."""
    sent_ms = asyncio.run(_send_carts(server.grpc_port, users, round_name))
    deadline = time.monotonic() + 30
    time.sleep(1.5)
    received: dict[str, int] = {}
    while len(received) < users and time.monotonic() < deadline:
        received = {m["envelope"]["to"][0]: m["received_ms"] for m in _get_json(
            server.mail_http_port, "/api/messages") if m["envelope"]["to"][0] in sent_ms}
        time.sleep(0.5)
    latencies = sorted(received[e] - (sent_ms[e] + 1000) for e in received)
    late, dispatch = _split_from_shards(server.data_dir, received)
    print(f"email ({round_name}): {len(received)} of {users} arrived", flush=True)
    figures = (users, len(received), _quantile(latencies, 0.5), _quantile(latencies, 0.99),
               latencies[-1] if latencies else None, _quantile(late, 0.5), _quantile(late, 0.99),
               _quantile(dispatch, 0.5), _quantile(dispatch, 0.99))
    return {key.format(tag): value for key, value in zip(_EMAIL_KEYS, figures, strict=True)}


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
    """From the shard files, per email received: its row made - its step's due time (timer
    lateness), and SMTP received - row made (dispatch)."""
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


# ---- /metrics ---------------------------------------------------------------------------------

def _get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
        return json.load(answer)


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text: str = answer.read().decode()
        return text


def _metric_figures(text: str) -> dict[str, Any]:
    lateness_p99, lateness_count = _bucket_quantile(text, "pulsewire_timer_lateness_ms", 0.99)
    commit_p50, commits = _bucket_quantile(text, "pulsewire_commit_ms", 0.50)
    commit_p99, _ = _bucket_quantile(text, "pulsewire_commit_ms", 0.99)
    return {"timer_lateness_metrics_p99_ms": lateness_p99,
            "timer_lateness_metrics_count": lateness_count, "group_commit_metrics_p50_ms":
            commit_p50, "group_commit_metrics_p99_ms": commit_p99, "group_commits": commits}


def _bucket_quantile(text: str, histogram: str, q: float) -> tuple[float | None, int]:
    """The upper bound of the bucket holding quantile `q`, and how many observations."""
    buckets = [(float(le), float(n)) for le, n in re.findall(
        rf'^{histogram}_bucket\{{le="([^"]+)"\}} (\S+)$', text, re.M)]
    total = buckets[-1][1] if buckets else 0.0
    bound = next((le for le, n in buckets if n >= q * total), None) if total else None
    return bound, int(total)


# ---- py-spy ---------------------------------------------------------------------------------

PROFILE_HZ = 100


def _start_profiler(pid: int, plan: Plan) -> subprocess.Popen[bytes] | None:
    """py-spy, sampling only the thread that holds the GIL: where the Python time goes."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        print("--profile: py-spy is not installed (.venv/bin/pip install py-spy)")
        return None
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--gil", "--nonblocking",
                             "--rate", str(PROFILE_HZ), "--format", "raw", "--output",
                             str(RESULTS / "server-profile.txt"), "--duration",
                             str(int(plan.warmup_s + plan.ingest_s))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finish_profiler(spy: subprocess.Popen[bytes], plan: Plan) -> None:
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
    _print_profile(RESULTS / "server-profile.txt", PROFILE_HZ * (plan.warmup_s + plan.ingest_s))


def _print_profile(collapsed: Path, ticks: float, top: int = 25) -> None:
    """Own and inclusive GIL samples per function, from py-spy's collapsed stacks."""
    own, inclusive, threads = Counter[str](), Counter[str](), Counter[str]()
    for line in collapsed.read_text().splitlines() if collapsed.exists() else []:
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r" \((.*/)?([^/]+):\d+\)$", r" (\2)", f) for f in stack.split(";")]
        n = int(count)
        threads["aiosqlite threads" if "_connection_worker_thread (core.py)" in frames
                else "event loop"] += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    total = sum(threads.values())
    print(f"\nprofile ({collapsed.relative_to(REPO)}): the GIL was held in {total} of "
          f"{ticks:.0f} ticks ({100 * total / ticks:.0f}%): "
          + ", ".join(f"{name} {100 * n / max(total, 1):.0f}%" for name, n in threads.items()))
    for title, counts in (("own", own), ("inclusive", inclusive)):
        print(f"top {top} by {title} time (% of GIL samples):")
        for frame, n in counts.most_common(top):
            print(f"  {100 * n / max(total, 1):5.1f}%  {frame}")


# ---- the report ----------------------------------------------------------------------------

def _print(r: dict[str, Any], plan: Plan) -> None:
    cores = os.cpu_count() or 1
    print(f"""
pulsewire server, {cores} cores shared by server, load generator and mail catcher
  ingest, Stream x{plan.streams} with {plan.window} batches in flight each, {plan.ingest_s:g} s
      {r['ingest_events_per_s']:>9,} events/s   CPU: server {r['ingest_server_cpu_pct']}%, \
generator {r['ingest_generator_cpu_pct']}%, machine {r['ingest_machine_busy_pct']}% \
of {100 * cores}%
      server RSS {r['server_rss_start_mb']} MB before, {r['server_rss_end_mb']} MB after \
(peak {r['server_rss_peak_mb']} MB)
  bare grpc.aio decode + ack, the same load
      {r['grpc_decode_only_events_per_s']:>9,} events/s
  commit latency, unary Send paced at {COMMIT_EVENTS_PER_S:,} events/s, {plan.commit_s:g} s
      p50 {r['commit_p50_ms']} ms   p99 {r['commit_p99_ms']} ms   max {r['commit_max_ms']} ms
      offered {r['commit_offered_events_per_s']:,} events/s, achieved \
{r['commit_achieved_events_per_s']:,}, server CPU {r['commit_server_cpu_pct']}%
      group commit (/metrics, whole run, bucket bounds): p50 <= \
{r['group_commit_metrics_p50_ms']} ms, p99 <= {r['group_commit_metrics_p99_ms']} ms, \
{r['group_commits']:,} groups
{_email_lines(r, "", "idle server")}
{_email_lines(r, "_loaded", f"under {EMAIL_BACKGROUND_EVENTS_PER_S:,} events/s")}
      the background's commit latency meanwhile: p50 \
{r['email_loaded_background_commit_p50_ms']} ms, p99 \
{r['email_loaded_background_commit_p99_ms']} ms
      (the server's clock and timers have 1 ms resolution)
  timer lateness from /metrics: p99 <= {r['timer_lateness_metrics_p99_ms']} ms (bucket bound), \
{r['timer_lateness_metrics_count']} timers""")


def _email_lines(r: dict[str, Any], tag: str, when: str) -> str:
    users, arrived, p50, p99, top, late50, late99, dispatch50, dispatch99 = (
        r[key.format(tag)] for key in _EMAIL_KEYS)
    return f"""\
  email latency, trigger (cart_add + 1 s) -> SMTP received, {arrived} of {users} users, {when}
      p50 {p50} ms   p99 {p99} ms   max {top} ms
      timer lateness (outbox row made - due): p50 {late50} ms, p99 {late99} ms
      dispatch (SMTP received - row made): p50 {dispatch50} ms, p99 {dispatch99} ms"""


def _record(results: dict[str, Any], plan: Plan, args: argparse.Namespace) -> None:
    line = {"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "revision": _revision(),
            "quick": args.quick, "profiled": args.profile, **results, "cores": os.cpu_count(),
            "python": platform.python_version(), "cpu": _cpu_model(), "streams": plan.streams,
            "window": plan.window}
    with (RESULTS / "server.jsonl").open("a") as out:
        out.write(json.dumps(line) + "\n")


def _cpu_model() -> str:
    found = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    return found.group(1).strip() if found else platform.processor()


def _revision() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                           capture_output=True, text=True, check=False)
    return found.stdout.strip() or "unknown"


if __name__ == "__main__":
    raise SystemExit(main())

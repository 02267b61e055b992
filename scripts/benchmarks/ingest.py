"""Ingest throughput: the server end to end, and beside it grpc.aio's own limit.

  ingest     acked events/s from the load client's sustained load (Stream x8, 32 batches of 100
             events in flight on each, 4,000 devices, a third signed in) against the real
             server: decode, route, engine (every example sequence and segment active), group
             commit, ack; second by second too, to show how steady it was. The server's RSS
             before and after, its CPU, the client's and the machine's; from /metrics, how many
             events each shard transaction carried (the raw SQLite figure commits as many).
  bare       the same load, same client, against a grpc.aio server whose Stream handler only
             decodes each batch (grpc calls Batch.FromString) and acks it.
  sweeps     short sustained runs over the batch size (events per batch, with the same events
             in flight at every size) and over the shard count (a fresh server for each).
"""

from __future__ import annotations

import multiprocessing
import re
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import grpc
import uvloop

from collector.gen.pulsewire.v1 import batch_pb2
from scripts.benchmarks import server_stack
from scripts.benchmarks.load_client import WINDOW, LoadSpec, run_load
from scripts.benchmarks.server_stack import Server
from server.rpc.gen.pulsewire.v1 import ingest_pb2_grpc


def bare(duration_s: float, warmup_s: float) -> dict[str, Any]:
    """The ingest load against a server that only decodes and acks: grpc.aio's limit."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_bare_main, args=(send,), daemon=True)
    process.start()
    try:
        if not receive.poll(server_stack.START_TIMEOUT_S) or process.pid is None:
            raise SystemExit("the bare gRPC server did not start")
        target = f"127.0.0.1:{receive.recv()}"
        load = run_load(LoadSpec("sustained", target, duration_s, warmup_s, prefix="bare"),
                        process.pid)
    finally:
        process.terminate()
        process.join(10)
    print(f"bare grpc.aio decode + ack: {load['events_per_s']:,.0f} events/s", flush=True)
    return {"grpc_decode_only_events_per_s": round(load["events_per_s"]),
            "grpc_decode_only_server_cpu_pct": round(load["server_cpu_pct"]),
            "grpc_decode_only_client_cpu_pct": round(load["generator_cpu_pct"])}


class _BareIngest(ingest_pb2_grpc.IngestServicer):
    async def Stream(self, request_iterator: Any, context: Any) -> Any:
        async for batch in request_iterator:
            yield batch_pb2.Ack(seq=batch.seq, accepted=len(batch.events),
                                device_id=batch.device_id)


def _bare_main(port_out: Any) -> None:
    async def serve() -> None:
        server = grpc.aio.server()
        ingest_pb2_grpc.add_IngestServicer_to_server(_BareIngest(), server)  # type: ignore[no-untyped-call]
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        port_out.send(port)
        await server.wait_for_termination()

    uvloop.run(serve())


def sustained(server: Server, duration_s: float, warmup_s: float) -> dict[str, Any]:
    """The headline ingest figure, with the server's resources and its group sizes."""
    before = _counters(server_stack.metrics(server))
    load = run_load(LoadSpec("sustained", server.target, duration_s, warmup_s), server.pid)
    after = _counters(server_stack.metrics(server))
    if load["rejected"] or load["duplicate"]:
        print(f"warning: {load['rejected']} batches rejected, {load['duplicate']} duplicates")
    groups = after["groups"] - before["groups"]
    events_per_group = (after["events"] - before["events"]) / groups if groups else 0.0
    print(f"ingest: {load['events_per_s']:,.0f} events/s over {duration_s:g} s", flush=True)
    return {"ingest_events_per_s": round(load["events_per_s"]),
            "ingest_seconds": duration_s,
            "ingest_rejected_batches": load["rejected"],
            "server_rss_start_mb": round(load["rss_start_mb"], 1),
            "server_rss_end_mb": round(load["rss_end_mb"], 1),
            "server_rss_peak_mb": round(load["rss_peak_mb"], 1),
            "ingest_server_cpu_pct": round(load["server_cpu_pct"]),
            "ingest_client_cpu_pct": round(load["generator_cpu_pct"]),
            "ingest_machine_busy_pct": round(load["machine_busy_pct"]),
            "ingest_events_per_group_commit": round(events_per_group),
            "ingest_first_10s_events_per_s": round(sum(load["by_second"][:10]) / 10),
            "ingest_last_10s_events_per_s": round(sum(load["by_second"][-10:]) / 10),
            "ingest_events_by_second": load["by_second"]}


def _counters(text: str) -> dict[str, float]:
    def value(name: str) -> float:
        found = re.search(rf"^{name} (\S+)$", text, re.M)
        return float(found.group(1)) if found else 0.0

    return {"events": value("pulsewire_events_in_total"),
            "groups": value("pulsewire_commit_ms_count")}


def over_batch_sizes(server: Server, sizes: tuple[int, ...], duration_s: float,
                     warmup_s: float) -> list[dict[str, Any]]:
    """The same events in flight at every size (the window scales): at 1,000 events a batch,
    32 batches on each of 8 streams would queue ~8 s of work and never reach steady state."""
    points = []
    for size in sizes:
        spec = LoadSpec("sustained", server.target, duration_s, warmup_s,
                        window=max(1, WINDOW * 100 // size), events_per_batch=size,
                        prefix=f"size{size}")
        rate = run_load(spec, server.pid)["events_per_s"]
        print(f"  {size:>5} events per batch: {rate:>9,.0f} events/s", flush=True)
        points.append({"events_per_batch": size, "events_per_s": round(rate)})
    return points


def over_shard_counts(counts: tuple[int, ...], duration_s: float, warmup_s: float,
                      known: dict[int, float]) -> list[dict[str, Any]]:
    """Each count on a fresh server with that many shard files; `known` ones are not rerun."""
    points = []
    for shards in counts:
        if shards in known:
            rate = known[shards]
        else:
            with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="pw-bench-") as tmp:
                server = server_stack.start(stack, Path(tmp), shards=shards, catalog=False)
                rate = run_load(LoadSpec("sustained", server.target, duration_s, warmup_s,
                                         prefix=f"shards{shards}"), server.pid)["events_per_s"]
        print(f"  {shards:>3} shards: {rate:>9,.0f} events/s", flush=True)
        points.append({"shards": shards, "events_per_s": round(rate)})
    return points

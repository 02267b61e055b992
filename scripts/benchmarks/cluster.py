"""The distributed mode: ingest into a cluster of 1 and of 2 nodes, and failover under load.

Each cluster runs on its own fresh nats-server, with the example sequences and segments, the
mail catcher and the site's rate limit lifted, as the embedded ingest figure has them.

  ingest     the embedded figure's load (Stream x8, 32 batches of 100 events in flight on each,
             same warm-up and duration), acked events/s, with the default 6 s leases: an ack
             means JetStream stored the batch, the shard's owner applies it after. 1 node owns
             all 8 shards; 2 nodes own 4 each and the load client spreads its streams over
             both. Beside it, what the owners had still to apply when the load stopped (log
             entries, from their JetStream consumers), how long they took to finish it, and so
             the rate at which events were applied: every event accepted (warm-up too) over the
             time from the load's start until the last was applied.
  failover   2 nodes with 3 s leases under 10,000 events/s sent to node-1; node-2 is killed
             (kill -9) and the figure is the time from the kill until node-1 reports all 8
             shards caught up: node-2's leases lapsing, node-1 taking its shards, and replaying
             what piled up on their subjects meanwhile.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import nats

from scripts.benchmarks import cluster_stack, server_stack
from scripts.benchmarks.cluster_stack import Node, owners_of, wait_until
from scripts.benchmarks.latency import BACKGROUND_EVENTS_PER_S
from scripts.benchmarks.load_client import LoadSpec, run_load
from scripts.benchmarks.traffic import SITE_KEY, SITE_SECRET

SHARDS = 8
INGEST_LEASE_TTL_S = 6.0  # the default
FAILOVER_LEASE_TTL_S = 3.0
STREAM = "PULSEWIRE"  # the default [cluster] stream; each shard's consumer is `shard-<n>`
FAILOVER_KILL_AFTER_S = 3.0
FAILOVER_LOAD_S = 15.0
DRAIN_TIMEOUT_S = 120.0


def measure(duration_s: float, warmup_s: float) -> dict[str, Any]:
    figures: dict[str, Any] = {"cluster_seconds": duration_s,
                               "cluster_failover_lease_ttl_s": FAILOVER_LEASE_TTL_S}
    for nodes, name in ((1, "cluster_1_node"), (2, "cluster_2_nodes")):
        figures.update({f"{name}_{k}": v for k, v in _ingest(nodes, duration_s,
                                                            warmup_s).items()})
    for ratio, figure in (("cluster_scaling_ratio", "events_per_s"),
                          ("cluster_applied_scaling_ratio", "applied_events_per_s")):
        one, two = figures[f"cluster_1_node_{figure}"], figures[f"cluster_2_nodes_{figure}"]
        figures[ratio] = round(two / one, 2) if one and two else None
    figures["cluster_failover_ms"] = _failover()
    print(f"cluster: 2 nodes / 1 node = {figures['cluster_scaling_ratio']} acked, "
          f"{figures['cluster_applied_scaling_ratio']} applied; failover "
          f"{figures['cluster_failover_ms']:,} ms (leases lapse after {FAILOVER_LEASE_TTL_S:g} s)",
          flush=True)
    return figures


def _ingest(nodes: int, duration_s: float, warmup_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pw-bench-cluster-") as tmp, ExitStack() as stack:
        nats_url, cluster = _start(stack, Path(tmp), nodes, INGEST_LEASE_TTL_S)
        targets = [node.target for node in cluster]
        spec = LoadSpec("sustained", targets[0], duration_s, warmup_s,
                        prefix=f"cluster{nodes}", more_targets=tuple(targets[1:]))
        load = run_load(spec, cluster[0].pid)
        stopped = time.time()
        backlog = left = _backlog(nats_url)
        while left and time.time() < stopped + DRAIN_TIMEOUT_S:
            time.sleep(0.2)
            left = _backlog(nats_url)
        drained = time.time()
        accepted = sum(node.counter("pulsewire_events_in_total") for node in cluster)
        held = [sorted(node.caught_up()) for node in cluster]
    if load["rejected"] or load["duplicate"]:
        print(f"warning: {load['rejected']} batches rejected, {load['duplicate']} duplicates")
    figures = {"events_per_s": round(load["events_per_s"]), "applied_events_per_s": None,
               "backlog_entries_at_end": backlog, "drain_s": None,
               "machine_busy_pct": round(load["machine_busy_pct"])}
    print(f"cluster of {nodes}: {load['events_per_s']:,.0f} events/s acked over {duration_s:g} s;"
          f" {backlog:,} log entries left to apply at the end", flush=True)
    if left:
        print(f"warning: {left:,} log entries still not applied {DRAIN_TIMEOUT_S:g} s after the "
              f"load; shards held caught up, by node: {held}", flush=True)
        return figures
    # every event the load sent, warm-up included, over the time from its start until applied
    applied = accepted / (drained - (load["window"][0] - warmup_s))
    print(f"  applied {drained - stopped:.1f} s after the load: {applied:,.0f} events/s applied",
          flush=True)
    return {**figures, "applied_events_per_s": round(applied),
            "drain_s": round(drained - stopped, 1)}


def _failover() -> int:
    """ms from node-2's kill -9 until node-1 holds all shards caught up, under load."""
    with tempfile.TemporaryDirectory(prefix="pw-bench-cluster-") as tmp, ExitStack() as stack:
        _, (survivor, victim) = _start(stack, Path(tmp), 2, FAILOVER_LEASE_TTL_S)
        spec = LoadSpec("paced", survivor.target, FAILOVER_LOAD_S,
                        rate_batches_per_s=BACKGROUND_EVENTS_PER_S / 100, prefix="failover")
        with ThreadPoolExecutor(1) as pool:
            load = pool.submit(run_load, spec, survivor.pid)
            time.sleep(FAILOVER_KILL_AFTER_S)
            killed = time.monotonic()
            victim.kill()
            wait_until(lambda: len(survivor.caught_up()) == SHARDS, 60,
                       f"{survivor.name} holds all shards")
            failover_s = time.monotonic() - killed
            lost = load.result()["lost"]
    if lost:
        print(f"warning: {lost} batches unanswered during the failover")
    return round(failover_s * 1000)


def _start(stack: ExitStack, tmp: Path, nodes: int,
           lease_ttl_s: float) -> tuple[str, list[Node]]:
    nats_url = cluster_stack.start_nats(stack, tmp / "nats")
    smtp_port, _ = server_stack.start_mailcatcher(stack, tmp)
    cluster = cluster_stack.start_cluster(
        stack, tmp, owners_of(nodes, SHARDS), nats_url=nats_url, smtp_port=smtp_port,
        site=(SITE_KEY, SITE_SECRET), lease_ttl_s=lease_ttl_s, catalog=False,
        env=server_stack.UNLIMITED)
    return nats_url, cluster


def _backlog(nats_url: str) -> int:
    """Log entries stored and not yet applied, over every shard's consumer."""
    async def pending() -> int:
        nc = await nats.connect(nats_url)
        try:
            js = nc.jetstream()
            infos = [info for info in await js.consumers_info(STREAM)
                     if (info.name or "").startswith("shard-")]  # one per shard's holding
            return sum((info.num_pending or 0) + (info.num_ack_pending or 0) for info in infos)
        finally:
            await nc.close()

    return asyncio.run(pending())

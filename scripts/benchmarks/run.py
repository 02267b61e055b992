"""`scripts/bench [--quick] [--only GROUP,...] [--profile]`: every benchmark, in an order that
keeps each figure beside the limit it is compared with, then bench/results.json,
bench/results.md, bench/samples.json (the latency samples), bench/*.png, and one line appended
to bench/history.jsonl.

Groups, in the order they run:
  wire       bytes per event of a demo visit, against Segment-style JSON gzipped (no servers)
  server     the bare grpc.aio server, then one server (8 shards, the example sequences): a
             few emails to warm it, email on the idle server, sustained ingest and beside it
             Segment /v1/batch, raw SQLite, commit latency, email under load, ingest against
             batch size
  shards     ingest against shard count (a fresh server for each count)
  cluster    the distributed mode: ingest into 1 node and into 2 (each on a fresh nats-server),
             failover under load (full runs only, unless named with --only)
  storage    shard bytes per user
  console    the web console's pages with a month of 1,000,000 users in the shards
  backtest   `pulsewire backtest` throughput
  footprint  the loader's gzipped size, Pyodide's boot in headless Chromium
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.benchmarks import (
    backtest,
    cluster,
    console,
    footprint,
    ingest,
    latency,
    machine,
    report,
    segment_load,
    server_profile,
    server_stack,
    storage,
    wire,
)

OUT = server_stack.REPO / "bench"
COLD_EMAILS = 10
GROUPS = ("wire", "server", "shards", "cluster", "storage", "console", "backtest", "footprint")
NOT_QUICK = ("cluster",)  # a quick run does these only when --only names them


@dataclass(frozen=True)
class Plan:
    ingest_s: float
    warmup_s: float
    bare_s: float
    sqlite_s: float
    commit_s: float
    email_users: int
    sweep_s: float
    sweep_warmup_s: float
    shard_counts: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    storage_users: int
    backtest_events: int
    boot_loads: int  # the first with an empty cache, the rest cached
    console_users: int


FULL = Plan(60, 5, 10, 10, 20, 200, 6, 2, (1, 2, 4, 8), (10, 30, 100, 300, 1000), 100_000,
            1_000_000, 4, 1_000_000)
QUICK = Plan(15, 2, 3, 2, 5, 50, 2, 1, (1, 8), (10, 100, 1000), 5_000, 100_000, 2, 50_000)


def main(argv: list[str]) -> int:
    args = _arguments(argv)
    plan = QUICK if args.quick else FULL
    OUT.mkdir(exist_ok=True)
    started = time.monotonic()
    partial = args.only if args.only_named else None
    results: dict[str, Any] = {"quick": args.quick, "profiled": args.profile, "only": partial,
                               "machine": machine.facts(), "phase_s": {}}
    samples: dict[str, Any] = {}
    print(f"{os.cpu_count()} cores, shared by the server, the load client and the mail "
          "catcher (and whatever else runs here): every figure includes the client's own cost",
          flush=True)
    phases: dict[str, Callable[[], dict[str, Any]]] = {
        "wire": wire.measure,
        "server": lambda: _server(plan, args.profile, samples),
        "shards": lambda: _shards(plan, results),
        "cluster": lambda: cluster.measure(plan.ingest_s, plan.warmup_s),
        "storage": lambda: storage.bytes_per_user(plan.storage_users),
        "console": lambda: console.measure(plan.console_users),
        "backtest": lambda: _backtest(plan, args.profile),
        "footprint": lambda: {**footprint.loader(), **footprint.pyodide_boot(plan.boot_loads)},
    }
    for name in args.only:
        print(f"== {name}", flush=True)
        began = time.monotonic()
        results.update(phases[name]())
        results["phase_s"][name] = round(time.monotonic() - began, 1)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    markdown = report.write(results, OUT)
    (OUT / "samples.json").write_text(json.dumps(samples) + "\n")
    with (OUT / "history.jsonl").open("a") as history:
        history.write(json.dumps(results) + "\n")
    _charts(results, samples)
    print(f"\n{markdown}\nwritten: bench/results.json, bench/results.md, bench/samples.json, "
          f"charts bench/*.png ({results['duration_s']:.0f} s)")
    return 0


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="short phases and fewer users: under 2 minutes")
    parser.add_argument("--only", help=f"comma-separated groups to run (default: all of "
                                       f"{','.join(GROUPS)}; --quick leaves out "
                                       f"{','.join(NOT_QUICK)})")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the server during ingest (bench/server-profile.txt) and "
                             "cProfile the backtest (bench/backtest.prof); figures then suffer")
    args = parser.parse_args(argv)
    args.only_named = args.only is not None
    default = [g for g in GROUPS if not (args.quick and g in NOT_QUICK)]
    wanted = args.only.split(",") if args.only_named else default
    if set(wanted) - set(GROUPS):
        parser.error(f"--only takes some of {','.join(GROUPS)}")
    args.only = [g for g in GROUPS if g in wanted]
    return args


def _server(plan: Plan, profile: bool, samples: dict[str, Any]) -> dict[str, Any]:
    figures = ingest.bare(plan.bare_s, plan.sweep_warmup_s)
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="pw-bench-") as tmp:
        server = server_stack.start(stack, Path(tmp), shards=8)
        # The first emails of a fresh server pay one-time costs: a few go first, reported
        # apart as email_cold_*; the idle figure is the warm server's.
        figures.update(latency.email(server, COLD_EMAILS, "cold")[0])
        idle, samples["idle"] = latency.email(server, plan.email_users, "idle")
        figures.update(idle)
        spy = server_profile.start(server.pid, plan.warmup_s + plan.ingest_s,
                                   OUT / "server-profile.txt") if profile else None
        figures.update(ingest.sustained(server, plan.ingest_s, plan.warmup_s))
        server_profile.finish(spy, plan.warmup_s + plan.ingest_s, OUT / "server-profile.txt")
        # The Segment HTTP source on the same server, so its figure sits beside this run's gRPC
        # one; at most 30 s (each message is a batch of its own: its rate steadies fast).
        figures.update(segment_load.measure(server, min(plan.ingest_s, 30), plan.warmup_s,
                                            grpc_events_per_s=figures["ingest_events_per_s"]))
        figures.update(storage.sqlite_rows(figures["ingest_events_per_group_commit"],
                                           plan.sqlite_s))
        commit, latencies = latency.commit(server, plan.commit_s)
        figures.update(commit)
        samples["commit"] = {"latency_ms": latencies}
        loaded, samples["loaded"] = latency.email_under_load(server, plan.email_users)
        figures.update(loaded)
        print("ingest against batch size (8 shards):", flush=True)
        figures["sweep_batch_sizes"] = ingest.over_batch_sizes(
            server, plan.batch_sizes, plan.sweep_s, plan.sweep_warmup_s)
        figures.update(latency.from_metrics(server))
    return figures


def _shards(plan: Plan, results: dict[str, Any]) -> dict[str, Any]:
    """A fresh server per count; 8 shards with 100-event batches is the batch-size sweep's."""
    same = [p["events_per_s"] for p in results.get("sweep_batch_sizes", [])
            if p["events_per_batch"] == 100]
    known = {8: float(same[0])} if same else {}
    print("ingest against shard count (batches of 100):", flush=True)
    return {"sweep_shards": ingest.over_shard_counts(plan.shard_counts, plan.sweep_s,
                                                     plan.sweep_warmup_s, known)}


def _backtest(plan: Plan, profile: bool) -> dict[str, Any]:
    figures = backtest.measure(plan.backtest_events)
    if profile:
        backtest.profile(plan.backtest_events, OUT / "backtest.prof")
    return figures


def _charts(results: dict[str, Any], samples: dict[str, Any]) -> None:
    from scripts.benchmarks import charts  # matplotlib: loaded once the measuring is done

    for path in charts.draw(results, samples, OUT):
        print(f"chart: {path.relative_to(server_stack.REPO)}")

"""The floors each headline figure is held to, and the run written out: bench/results.json
(every figure, flat, plus `floors`, `machine` and the sweeps), bench/results.md (the table),
and the same table on stdout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.benchmarks import machine

Results = dict[str, Any]


@dataclass(frozen=True)
class Floor:
    key: str
    text: str
    met: Callable[[Results], bool]


def _at_least(key: str, floor: float) -> Floor:
    return Floor(key, f">= {floor:,g}", lambda r: r[key] >= floor)


def _at_most(key: str, floor: float) -> Floor:
    return Floor(key, f"<= {floor:,g}", lambda r: r[key] <= floor)


FLOORS = (
    _at_least("ingest_events_per_s", 100_000),
    Floor("cluster_scaling_ratio", ">= 1.6 (goal)", lambda r: r["cluster_scaling_ratio"] >= 1.6),
    Floor("commit_p99_ms", "<= 25 at 20,000 offered",
          lambda r: r["commit_p99_ms"] <= 25 and r["commit_offered_events_per_s"] >= 19_000),
    _at_most("email_p99_ms", 100),
    _at_most("timer_lateness_p99_ms", 50),
    Floor("wire_bytes_per_event", "<= 10 and <= JSON gzip / 10",
          lambda r: r["wire_bytes_per_event"] <= min(10, r["json_gzip_bytes_per_event"] / 10)),
    _at_least("backtest_events_per_s", 300_000),
    _at_most("backtest_3_variants_over_one_run", 3),
    _at_most("storage_bytes_per_user", 1024),
    _at_most("console_page_p95_ms", 100),
    _at_most("loader_gzip_bytes", 2048),
)


def judge(results: Results) -> dict[str, dict[str, Any]]:
    """Each floor, and whether it is met (None: the figure was not measured)."""
    out = {}
    for floor in FLOORS:
        value = results.get(floor.key)
        out[floor.key] = {"floor": floor.text,
                          "met": None if value is None else bool(floor.met(results))}
    return out


def _n(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}{unit}"
    return f"{int(value):,}{unit}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _over(r: Results, key: str, base: str) -> float | None:
    return r[key] / r[base] if r.get(key) is not None and r.get(base) else None


def rows(r: Results) -> list[tuple[str, str, str, str]]:
    """(figure, measured, measured beside it, which floor key) per table row."""
    return [
        (f"ingest, end to end durable, {_n(r.get('ingest_seconds'))} s sustained (events/s)",
         _n(r.get("ingest_events_per_s")),
         f"grpc.aio decode-only {_n(r.get('grpc_decode_only_events_per_s'))}; raw SQLite "
         f"{_n(r.get('sqlite_rows_per_s'))} rows/s; first / last 10 s "
         f"{_n(r.get('ingest_first_10s_events_per_s'))} / "
         f"{_n(r.get('ingest_last_10s_events_per_s'))}; server RSS "
         f"{_n(r.get('server_rss_start_mb'))} -> {_n(r.get('server_rss_end_mb'))} MB",
         "ingest_events_per_s"),
        ("ingest, Segment POST /v1/batch, 100 messages a request, "
         f"{_n(r.get('segment_batch_seconds'))} s sustained (events/s)",
         _n(r.get("segment_batch_events_per_s")),
         f"gRPC ingest of the same run {_n(r.get('ingest_events_per_s'))}, "
         f"{_ratio(_over(r, 'ingest_events_per_s', 'segment_batch_events_per_s'))}x this; "
         f"{_n(r.get('segment_batch_errors'))} errors; server CPU "
         f"{_n(r.get('segment_batch_server_cpu_pct'), '%')}, request p50 "
         f"{_n(r.get('segment_batch_request_p50_ms'))} ms", ""),
        *_cluster_rows(r),
        (f"event -> commit p99 at {_n(r.get('commit_offered_events_per_s'))} events/s offered "
         "(ms)", _n(r.get("commit_p99_ms")),
         f"p50 {_n(r.get('commit_p50_ms'))}; client behind schedule p99 "
         f"{_n(r.get('commit_client_behind_p99_ms'))}", "commit_p99_ms"),
        (f"trigger -> SMTP received p99, idle, {_n(r.get('email_users'))} emails (ms)",
         _n(r.get("email_p99_ms")),
         f"p50 {_n(r.get('email_p50_ms'))}; dispatch p99 {_n(r.get('dispatch_p99_ms'))}",
         "email_p99_ms"),
        ("trigger -> SMTP received p99, under 10,000 events/s (ms)",
         _n(r.get("email_loaded_p99_ms")),
         f"p50 {_n(r.get('email_loaded_p50_ms'))}; the load's commit p99 "
         f"{_n(r.get('email_loaded_background_commit_p99_ms'))} ms", ""),
        ("timer lateness p99, idle (ms)", _n(r.get("timer_lateness_p99_ms")),
         f"under 10,000 events/s: {_n(r.get('timer_lateness_loaded_p99_ms'))}",
         "timer_lateness_p99_ms"),
        ("wire bytes per event, demo visit, gRPC-Web frames", _n(r.get("wire_bytes_per_event")),
         f"Segment-style JSON gzip -6 {_n(r.get('json_gzip_bytes_per_event'))} "
         f"({_n(r.get('json_gzip_to_wire_ratio'))}x); {_n(r.get('wire_events'))} events in "
         f"{_n(r.get('wire_batches'))} batches, {_n(r.get('wire_resumed_batches'))} resumed; "
         f"not resumed {_n(r.get('wire_bytes_per_event_not_resumed'))}",
         "wire_bytes_per_event"),
        (f"backtest, {_n(r.get('backtest_events'))} events, end to end, median of 3 runs "
         "(events/s)", _n(r.get("backtest_events_per_s")),
         f"runs {', '.join(_n(x) for x in r.get('backtest_runs_events_per_s', []))}; engine "
         f"phase {_n(r.get('backtest_engine_events_per_s'))}", "backtest_events_per_s"),
        ("backtest, 3 variants side by side (--vary), over one run's wall time",
         _n(r.get("backtest_3_variants_over_one_run")),
         f"{_n(r.get('backtest_3_variants_wall_s'))} s for the three",
         "backtest_3_variants_over_one_run"),
        (f"storage, {_n(r.get('storage_users'))} users (bytes per user)",
         _n(r.get("storage_bytes_per_user")),
         f"{_n(r.get('storage_events_per_user'))} events per user", "storage_bytes_per_user"),
        (f"console, slowest page's p95, {_n(r.get('console_users'))} users in the shards (ms)",
         _n(r.get("console_page_p95_ms")), _console_pages(r), "console_page_p95_ms"),
        ("loader pw.js, minified, gzipped (bytes)", _n(r.get("loader_gzip_bytes")),
         f"{_n(r.get('loader_bytes'))} bytes before gzip", "loader_gzip_bytes"),
        ("Pyodide boot in headless Chromium, median of cached loads (ms)",
         _n(r.get("pyodide_boot_ms")), f"first, empty cache: {_n(r.get('pyodide_boot_first_ms'))}",
         ""),
    ]


def _console_pages(r: Results) -> str:
    pages = ", ".join(f"{page} {_n(r.get(f'console_{page}_p95_ms'))} "
                      f"({_n(r.get(f'console_{page}_cpu_p95_ms'))})"
                      for page in r.get("console_pages", []))
    return (f"p95 per page, wall at a client on loopback (server CPU): {pages}; filled in "
            f"{_n(r.get('console_fill_s'))} s")


def _cluster_rows(r: Results) -> list[tuple[str, str, str, str]]:
    def ingest(name: str) -> str:
        return (f"applied {_n(r.get(f'{name}_applied_events_per_s'))}; "
                f"{_n(r.get(f'{name}_backlog_entries_at_end'))} log entries left to apply at "
                f"the end, applied in {_n(r.get(f'{name}_drain_s'))} s")

    return [
        (f"cluster ingest, 1 node owning 8 shards, {_n(r.get('cluster_seconds'))} s sustained "
         "(events/s acked)", _n(r.get("cluster_1_node_events_per_s")),
         ingest("cluster_1_node"), ""),
        ("cluster ingest, 2 nodes owning 4 shards each, the load over both (events/s acked)",
         _n(r.get("cluster_2_nodes_events_per_s")), ingest("cluster_2_nodes"), ""),
        ("cluster scaling, 2 nodes over 1, acked", _ratio(r.get("cluster_scaling_ratio")),
         f"applied: {_ratio(r.get('cluster_applied_scaling_ratio'))}", "cluster_scaling_ratio"),
        ("cluster failover, kill -9 of 1 of 2 nodes under 10,000 events/s -> all 8 shards "
         "caught up on the other (ms)", _n(r.get("cluster_failover_ms")),
         f"leases lapse after {_n(r.get('cluster_failover_lease_ttl_s'))} s", ""),
    ]


def table(results: Results) -> str:
    floors = results["floors"]
    lines = ["| figure | measured | floor | met | beside it |", "|---|---:|---|---|---|"]
    for figure, measured, beside, key in rows(results):
        floor = floors.get(key, {})
        met = {True: "yes", False: "**no**", None: "-"}[floor.get("met")]
        measured = "not measured" if measured == "-" else measured
        lines.append(f"| {figure} | {measured} | {floor.get('floor', '-')} | "
                     f"{met if key else '-'} | {beside} |")
    return "\n".join(lines)


def write(results: Results, out: Path) -> str:
    """results.json and results.md into `out`; returns the Markdown."""
    results["floors"] = judge(results)
    kind = "quick run" if results["quick"] else "full run"
    if results.get("only"):
        kind += f" of {', '.join(results['only'])} only"
    markdown = (f"# pulsewire benchmarks ({kind}, {results['duration_s']:.0f} s, "
                f"{results['finished_at']})\n\n{table(results)}\n\n"
                f"Machine: {machine.line(results['machine'])}. The server, the load client "
                "and the mail catcher share these cores with whatever else runs.\n")
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(markdown)
    return markdown

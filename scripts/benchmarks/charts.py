"""The run's charts, as PNG files in bench/: latency histograms (commit, email, timer lateness)
with their p50, p99 and floor marked; ingest throughput second by second, and against shard
count and batch size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

matplotlib.use("Agg")  # files only, no display

_COLORS = ("tab:blue", "tab:orange")


def draw(results: dict[str, Any], samples: dict[str, dict[str, list[float]]],
         out: Path) -> list[Path]:
    drawn = [
        _histogram(out / "commit_latency.png", "Event -> durable commit (unary Send, "
                   f"{results.get('commit_offered_events_per_s', 0):,} events/s offered)",
                   {"paced load": samples.get("commit", {}).get("latency_ms", [])}, 25),
        _histogram(out / "email_latency.png", "Trigger -> SMTP received",
                   {"idle": samples.get("idle", {}).get("email_ms", []),
                    "under 10,000 events/s": samples.get("loaded", {}).get("email_ms", [])},
                   100),
        _histogram(out / "timer_lateness.png", "Timer lateness (outbox row made - due)",
                   {"idle": samples.get("idle", {}).get("timer_lateness_ms", []),
                    "under 10,000 events/s": samples.get("loaded", {}).get(
                        "timer_lateness_ms", [])}, 50),
        _timeline(out / "ingest_over_time.png", results.get("ingest_events_by_second", [])),
        _sweep(out / "ingest_by_shards.png", results.get("sweep_shards", []), "shards",
               "shard files (one writer each)", results.get("ingest_events_per_s")),
        _sweep(out / "ingest_by_batch_size.png", results.get("sweep_batch_sizes", []),
               "events_per_batch", "events per batch", results.get("ingest_events_per_s")),
    ]
    return [path for path in drawn if path is not None]


def _histogram(path: Path, title: str, series: dict[str, Sequence[float]],
               floor_ms: float) -> Path | None:
    series = {name: sorted(values) for name, values in series.items() if values}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    top = max(values[-1] for values in series.values())
    bins = [top * i / 60 for i in range(61)] if top > 0 else 10
    for (name, values), color in zip(series.items(), _COLORS, strict=False):
        p50, p99 = values[len(values) // 2], values[min(len(values) - 1, int(0.99 * len(values)))]
        ax.hist(values, bins=bins, alpha=0.6, color=color,
                label=f"{name}: n={len(values):,}, p50 {p50:.1f}, p99 {p99:.1f} ms")
        ax.axvline(p99, color=color, linestyle="--", linewidth=1)
    ax.axvline(floor_ms, color="tab:red", linewidth=1.5, label=f"floor: p99 <= {floor_ms:g} ms")
    ax.set(title=title, xlabel="ms", ylabel="count")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _sweep(path: Path, points: list[dict[str, Any]], key: str, label: str,
           headline: float | None) -> Path | None:
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = [p[key] for p in points]
    ax.plot(xs, [p["events_per_s"] for p in points], marker="o")
    ax.axhline(100_000, color="tab:red", linewidth=1.5, label="floor: 100,000 events/s")
    if headline:
        ax.axhline(headline, color="tab:gray", linestyle=":",
                   label=f"headline ingest run: {headline:,.0f} events/s")
    ax.set_xscale("log", base=2 if key == "shards" else 10)
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_ylim(bottom=0)
    ax.set(title=f"Ingest, end to end durable, against {label}", xlabel=label,
           ylabel="acked events/s")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.legend(fontsize=8)
    return _save(fig, path)


def _timeline(path: Path, by_second: list[int]) -> Path | None:
    if not by_second:
        return None
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(range(len(by_second)), by_second, marker=".")
    ax.axhline(100_000, color="tab:red", linewidth=1.5, label="floor: 100,000 events/s")
    ax.set_ylim(bottom=0)
    ax.set(title="Ingest, end to end durable, second by second",
           xlabel="s since the warm-up ended", ylabel="acked events in that second")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

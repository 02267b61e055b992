"""What a process uses, read from /proc: its resident memory, its CPU time, the machine's."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    at: float  # wall clock, s
    rss_mb: float
    cpu_s: float  # the process's user + system time
    machine_busy_s: float  # every core's non-idle time


def sample(pid: int) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+)", status)
    rss_kb = int(found.group(1)) if found else 0
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(stat[11]) + int(stat[12])) / ticks
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    busy = (user + nice + system + irq + softirq + steal) / ticks
    return Sample(time.time(), rss_kb / 1024, cpu, busy)


def usage(samples: list[Sample], window: tuple[float, float]) -> dict[str, float]:
    """RSS at the first and last sample, its peak; CPU shares over the samples in `window`."""
    inside = [s for s in samples if window[0] <= s.at <= window[1]] or samples
    first, last = inside[0], inside[-1]
    span = max(last.at - first.at, 1e-9)
    return {"rss_start_mb": samples[0].rss_mb, "rss_end_mb": samples[-1].rss_mb,
            "rss_peak_mb": max(s.rss_mb for s in samples),
            "server_cpu_pct": 100 * (last.cpu_s - first.cpu_s) / span,
            "machine_busy_pct": 100 * (last.machine_busy_s - first.machine_busy_s) / span}


def load_average() -> tuple[float, float, float]:
    """The machine's 1, 5 and 15 minute load: how much else was running."""
    return os.getloadavg()

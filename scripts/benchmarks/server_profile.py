"""`--profile`: py-spy samples the server during the ingest run, only the thread holding the
GIL (the one core Python code can use), into bench/server-profile.txt (collapsed stacks, for
speedscope or inferno), and the top functions are printed. It slows the server, so a profiled
run's figures say so (`profiled` in results.json).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

PROFILE_HZ = 100


def start(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        print("--profile: py-spy is not installed (.venv/bin/pip install py-spy)")
        return None
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--gil", "--nonblocking",
                             "--rate", str(PROFILE_HZ), "--format", "raw", "--output", str(out),
                             "--duration", str(int(seconds))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(spy: subprocess.Popen[bytes] | None, seconds: float, out: Path, top: int = 25) -> None:
    if spy is None:
        return
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()
    own, threads = Counter[str](), Counter[str]()
    for line in out.read_text().splitlines() if out.exists() else []:
        stack, _, count = line.rpartition(" ")
        frames = [re.sub(r" \((.*/)?([^/]+):\d+\)$", r" (\2)", f) for f in stack.split(";")]
        threads["aiosqlite threads" if "_connection_worker_thread (core.py)" in frames
                else "event loop"] += int(count)
        own[frames[-1]] += int(count)
    total, ticks = max(sum(threads.values()), 1), PROFILE_HZ * seconds
    print(f"\nprofile ({out}): the GIL was held in {100 * total / ticks:.0f}% of the ticks: "
          + ", ".join(f"{name} {100 * n / total:.0f}%" for name, n in threads.items()))
    print(f"top {top} by own time (% of GIL samples):")
    for frame, n in own.most_common(top):
        print(f"  {100 * n / total:5.1f}%  {frame}")

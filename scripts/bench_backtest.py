"""Benchmark `pulsewire backtest`: a synthetic shop history through the two example sequences.

    scripts/bench backtest            # 1M events
    scripts/bench backtest --quick    # 100k events
    scripts/bench backtest --profile  # then again under cProfile: bench/backtest.prof + the top

The history is generated into a temporary directory by its own process (not timed), then
replayed by a fresh `python -m server.cli backtest` process, the same code path people run.
Reported: events/s end to end (the process's wall time, interpreter start included) and of the
engine phase alone (as the command itself reports it on stderr), and the process's peak RSS.
Each run appends a line to bench/backtest.jsonl; nothing else in the tree is written.

This script imports nothing of pulsewire: a child's peak RSS as the kernel reports it starts
from its parent's (the pages it forked from), so the parent has to stay small.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench"
SEQUENCES = [REPO / "examples" / "sequences" / name
             for name in ("cart-recovery.yaml", "browse-abandonment.yaml")]
EVENTS_PER_USER = 50
ENGINE_PHASE = re.compile(r"engine phase ([0-9.]+) s, ([0-9,]+) events/s")
PROFILE_LINES = 30


@dataclass(frozen=True)
class Measurement:
    events: int
    users: int
    seed: int
    wall_s: float
    engine_s: float
    engine_events_per_s: int  # as the command reports it (from its unrounded engine time)
    peak_rss_mb: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s


def main() -> int:
    args = _arguments()
    events = args.events or (100_000 if args.quick else 1_000_000)
    users = args.users or max(1, events // EVENTS_PER_USER)
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pulsewire-bench-") as tmp:
        history = Path(tmp) / "history.csv"
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "server.backtest.synthetic", str(history),
                        "--events", str(events), "--users", str(users), "--seed", str(args.seed)],
                       check=True)
        print(f"generated {events:,} events for {users:,} users (seed {args.seed}) "
              f"in {time.perf_counter() - started:.1f} s", flush=True)
        measured = _measure(history, Path(tmp), events, users, args.seed)
        _print(measured)
        _record(measured)
        if args.profile:
            _profile(history, Path(tmp))
    return 0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k events instead of 1M")
    parser.add_argument("--events", type=int, help="how many events (overrides --quick)")
    parser.add_argument("--users", type=int, help=f"default: events / {EVENTS_PER_USER}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", action="store_true",
                        help="run once more under cProfile and print where the time goes")
    return parser.parse_args()


def _backtest_argv(history: Path, tmp: Path) -> list[str]:
    argv = ["backtest", "--events", str(history), "--format", "json",
            "--sends", str(tmp / "sends.jsonl")]
    for path in SEQUENCES:
        argv += ["--sequences", str(path)]
    return argv


def _measure(history: Path, tmp: Path, events: int, users: int, seed: int) -> Measurement:
    stdout, stderr = tmp / "stdout", tmp / "stderr"
    command = [sys.executable, "-m", "server.cli", *_backtest_argv(history, tmp)]
    with stdout.open("w") as out, stderr.open("w") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, cwd=REPO)
        _, status, usage = os.wait4(child.pid, 0)  # wait4: this child's own peak RSS
        wall_s = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    report = stderr.read_text()
    if child.returncode != 0:
        raise SystemExit(f"backtest failed ({child.returncode}):\n{report}")
    print(report.strip())
    engine = ENGINE_PHASE.search(report)
    if engine is None:
        raise SystemExit(f"no engine phase in the backtest's report:\n{report}")
    engine_s, engine_rate = float(engine.group(1)), int(engine.group(2).replace(",", ""))
    return Measurement(events, users, seed, wall_s, engine_s, engine_rate,
                       usage.ru_maxrss / 1024)


def _print(m: Measurement) -> None:
    print(f"end to end    {m.wall_s:7.2f} s  {m.events_per_s:>10,.0f} events/s")
    print(f"engine phase  {m.engine_s:7.2f} s  {m.engine_events_per_s:>10,.0f} events/s")
    print(f"peak RSS      {m.peak_rss_mb:7.1f} MB")


def _record(m: Measurement) -> None:
    line = {"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "revision": _revision(), **asdict(m),
            "events_per_s": round(m.events_per_s)}
    with (RESULTS / "backtest.jsonl").open("a") as out:
        out.write(json.dumps(line) + "\n")


def _revision() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                           capture_output=True, text=True, check=False)
    return found.stdout.strip() or "unknown"


def _profile(history: Path, tmp: Path) -> None:
    profile = RESULTS / "backtest.prof"
    command = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "server.cli",
               *_backtest_argv(history, tmp)]
    subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    print(f"\nprofile written to {profile.relative_to(REPO)}; top {PROFILE_LINES} by own time:")
    pstats.Stats(str(profile)).sort_stats("tottime").print_stats(PROFILE_LINES)
    print("the engine's own functions, by own time:")
    pstats.Stats(str(profile)).sort_stats("tottime").print_stats("server/engine/", PROFILE_LINES)


if __name__ == "__main__":
    raise SystemExit(main())

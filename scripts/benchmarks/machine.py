"""The machine a run measured: cores, CPU, kernel, library versions, and how busy it already was."""

from __future__ import annotations

import os
import platform
import re
import sqlite3
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from scripts.benchmarks.server_stack import REPO


def facts() -> dict[str, Any]:
    return {"cores": os.cpu_count(), "cpu": _cpu_model(), "kernel": platform.release(),
            "python": platform.python_version(), "grpcio": metadata.version("grpcio"),
            "protobuf": metadata.version("protobuf"), "sqlite": sqlite3.sqlite_version,
            "uvloop": metadata.version("uvloop"), "temp_filesystem": _filesystem(),
            "revision": _revision(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}


def line(machine: dict[str, Any]) -> str:
    """One line for the table's caption."""
    return (f"{machine['cores']} cores ({machine['cpu']}), Linux {machine['kernel']}, Python "
            f"{machine['python']}, grpcio {machine['grpcio']}, protobuf {machine['protobuf']}, "
            f"SQLite {machine['sqlite']}; load average {machine['load_average_at_start'][0]} at "
            f"the start, {machine.get('load_average_at_end', ['?'])[0]} at the end")


def _cpu_model() -> str:
    found = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
    return found.group(1).strip() if found else platform.processor()


def _filesystem() -> str:
    """The file system type under the temporary directory, where the shard files go."""
    where = os.path.realpath(tempfile.gettempdir())
    best, kind = "", "unknown"
    for mount in Path("/proc/mounts").read_text().splitlines():
        _dev, point, fs, *_ = mount.split()
        if (where == point or where.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
            best, kind = point, fs
    return kind


def _revision() -> str:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                           capture_output=True, text=True, check=False)
    return found.stdout.strip() or "unknown"

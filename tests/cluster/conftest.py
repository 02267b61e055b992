"""Cluster tests import their harness from beside this file and the server tests' batch
builder; each test starts its own nats-server and server processes."""

import sys
from pathlib import Path

for folder in (Path(__file__).resolve().parent, Path(__file__).resolve().parents[1] / "server"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

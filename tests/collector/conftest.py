"""Collector tests import wire_size.py, beside this file, and the raw chunker of the server
tests (raw_chunks.py); the paths are made explicit so the imports hold under any pytest import
mode."""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for folder in (_HERE, _HERE.parent / "server"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

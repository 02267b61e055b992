"""Browser tests import their harness from shop.py beside this file, and the server tests'."""

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
for folder in (_HERE, _HERE.parent / "server"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

"""Collector tests import wire_size.py, beside this file; the path is made explicit so the
import holds under any pytest import mode."""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

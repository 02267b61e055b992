"""Attacks with what a page exposes (the public site key) and ordinary clients, against a real
server: each test asserts the clean outcome. They import the server tests' harness."""

import sys
from pathlib import Path

_SERVER_TESTS = str(Path(__file__).resolve().parents[1] / "server")
if _SERVER_TESTS not in sys.path:
    sys.path.insert(0, _SERVER_TESTS)

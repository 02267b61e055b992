"""Runs one of the app SDK's Node test files (sdk_js/app/test/) under `node --test` and fails
with Node's report unless every test in it passed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APP_TESTS = REPO / "sdk_js" / "app" / "test"


def run_node_test(test_file: str, env: dict[str, str], timeout_s: float = 240) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: run scripts/setup")
    if not (REPO / "sdk_js" / "node_modules" / "@connectrpc" / "connect").is_dir():
        pytest.fail("sdk_js/node_modules is not installed: run scripts/setup "
                    "(or npm ci --prefix sdk_js)")
    result = subprocess.run(
        [node, "--test", "--test-reporter=spec", str(APP_TESTS / test_file)],
        cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout_s)
    counts = dict(re.findall(r"^\S+ (tests|pass|fail|skipped|todo|cancelled) (\d+)$",
                             result.stdout, re.MULTILINE))
    ran_all = counts.get("tests", "0") != "0" and counts.get("pass") == counts.get("tests")
    if result.returncode != 0 or not ran_all:
        pytest.fail(f"node --test {test_file} failed ({result.returncode}, {counts}):\n"
                    f"{result.stdout}\n{result.stderr}", pytrace=False)

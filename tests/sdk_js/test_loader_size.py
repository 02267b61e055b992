"""The loader behind the script tag stays tiny: `sdk_js/pw.js` minified with the pinned terser
(`npm ci --prefix sdk_js`) and gzipped at level 9 fits in 2 KB, and the "__PW_ASSETS__"
literal that the server replaces when it serves /pw.js survives minification."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
LOADER = REPO / "sdk_js" / "pw.js"
TERSER = REPO / "sdk_js" / "node_modules" / ".bin" / "terser"
MAX_GZIP_BYTES = 2048
ASSETS_LITERAL = '"__PW_ASSETS__"'


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the loader checks need Node.js")
    return node


@pytest.fixture(scope="module")
def minified() -> bytes:
    if not TERSER.exists():
        pytest.fail(f"terser is missing at {TERSER}: run `npm ci --prefix sdk_js` "
                    "(scripts/setup does)")
    done = subprocess.run(
        [_node(), str(TERSER), str(LOADER), "--compress", "--mangle"],
        capture_output=True, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_loader_parses() -> None:
    done = subprocess.run([_node(), "--check", str(LOADER)], capture_output=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr.decode()


def test_loader_fits_in_2_kb_gzipped(minified: bytes) -> None:
    size = len(gzip.compress(minified, 9))
    print(f"\npw.js: {LOADER.stat().st_size} B source, {len(minified)} B minified, "
          f"{size} B minified + gzip -9")
    assert size <= MAX_GZIP_BYTES, f"{size} B after terser and gzip -9, at most {MAX_GZIP_BYTES}"


def test_assets_placeholder_survives_minification(minified: bytes) -> None:
    assert LOADER.read_text().count(ASSETS_LITERAL) == 1
    assert minified.decode().count(ASSETS_LITERAL) == 1

"""What a site's visitors pay: the script tag's size and Pyodide's boot in the page.

  loader     `loader_gzip_bytes` of build/web/manifest.json, written by scripts/build_web (the
             minified pw.js, gzipped): the one thing every page view downloads.
  boot       a real server in demo mode (the demo shop, the assets of build/web) and headless
             Chromium (scripts/benchmarks/pyodide_boot.mjs, through playwright-core) loading
             /demo/product/premium-laptop until the page's `window.pw.boot_ms` is set (the
             collector's Web Worker is up): the first load with an empty cache, then
             `loads - 1` more in the same browser context (Pyodide and the wheels cached).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from scripts.benchmarks import server_stack
from scripts.benchmarks.server_stack import REPO

MANIFEST = REPO / "build" / "web" / "manifest.json"
BOOT_SCRIPT = Path(__file__).with_name("pyodide_boot.mjs")
PLAYWRIGHT = REPO / "sdk_js" / "node_modules" / "playwright-core"
CHROMIUM = Path("/usr/bin/chromium")


def loader() -> dict[str, Any]:
    if not MANIFEST.exists():
        print("loader: no build/web/manifest.json (run ./scripts/setup)", flush=True)
        return {"loader_gzip_bytes": None}
    manifest = json.loads(MANIFEST.read_text())
    return {"loader_gzip_bytes": manifest["loader_gzip_bytes"],
            "loader_bytes": manifest.get("loader_bytes")}


def pyodide_boot(loads: int) -> dict[str, Any]:
    missing = [str(p) for p in (MANIFEST, PLAYWRIGHT, CHROMIUM) if not p.exists()]
    if shutil.which("node") is None:
        missing.append("node")
    if missing:
        print(f"pyodide boot: skipped, missing {', '.join(missing)} (run ./scripts/setup)")
        return {"pyodide_boot_ms": None, "pyodide_boot_first_ms": None}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="pw-bench-") as tmp:
        server = server_stack.start(stack, Path(tmp), shards=2, demo=True)
        plan = json.dumps({"base": f"http://127.0.0.1:{server.http_port}", "loads": loads})
        done = subprocess.run(["node", str(BOOT_SCRIPT), plan], cwd=REPO, capture_output=True,
                              text=True, timeout=300)
    lines = done.stdout.strip().splitlines()
    found = json.loads(lines[-1]) if lines else {"error": done.stderr[-2000:]}
    if "error" in found or len(found["boot_ms"]) < loads:
        raise SystemExit(f"pyodide boot: {found.get('error')}\n{done.stderr[-2000:]}")
    first, cached = found["boot_ms"][0], found["boot_ms"][1:]
    print(f"pyodide boot: first (empty cache) {first} ms, then {cached} ms", flush=True)
    return {"pyodide_boot_ms": statistics.median(cached), "pyodide_boot_first_ms": first,
            "pyodide_boot_cached_loads_ms": cached,
            "pyodide_page_ready_ms": found["page_ready_ms"]}

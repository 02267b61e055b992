"""The collector as a browser gets it: Pyodide booted under Node from build/web/assets/<ID>/
(made by scripts/build_web), the collector installed by name from the lock file there, and
scripted_session.py run in it. Its batches must equal the ones CPython makes from the same
session, message for message and field for field."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
import scripted_session
from google.protobuf import text_format

from collector import decode_batch
from collector.gen.pulsewire.v1 import batch_pb2

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "build" / "web"
SCRIPT = Path(__file__).with_name("pyodide_batch.mjs")
NOT_BUILT = "the web assets are not built: run scripts/setup (or scripts/build_web)"


def _assets() -> Path:
    manifest = WEB / "manifest.json"
    if not manifest.is_file():
        pytest.fail(f"{manifest} is missing; {NOT_BUILT}")
    assets = WEB / "assets" / json.loads(manifest.read_text())["assets_id"]
    if not (assets / "pyodide-lock.json").is_file():
        pytest.fail(f"{assets}/pyodide-lock.json is missing; {NOT_BUILT}")
    return assets


def _check_wheel_is_current(assets: Path) -> None:
    """Fails when collector/ changed since the wheel was built, which would fail the comparison
    below for no fault of Pyodide's."""
    (wheel,) = assets.glob("pulsewire_collector-*.whl")
    with zipfile.ZipFile(wheel) as z:
        built = {n: z.read(n) for n in z.namelist() if n.startswith("collector/")}
    source = {p.relative_to(REPO).as_posix(): p.read_bytes()
              for p in (REPO / "collector").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    changed = sorted(n for n in built.keys() | source.keys() if built.get(n) != source.get(n))
    if changed:
        pytest.fail(f"{wheel.name} differs from {', '.join(changed)}: run scripts/build_web")


@functools.cache
def _pyodide_run() -> dict[str, Any]:
    """The Node script's output, run once for the tests that need it."""
    _check_wheel_is_current(_assets())
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: run scripts/setup")
    run = subprocess.run([node, str(SCRIPT)], cwd=REPO, capture_output=True, text=True,
                         timeout=100, check=False)
    assert run.returncode == 0, f"{SCRIPT.name} failed:\n{run.stdout}\n{run.stderr}"
    result: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])
    return result


def _show(batch: batch_pb2.Batch) -> str:
    return text_format.MessageToString(batch, as_utf8=True)


def test_pyodide_batches_equal_cpython_batches() -> None:
    batches = _pyodide_run()["batches"]
    pyodide = [batch_pb2.Batch.FromString(base64.b64decode(b)) for b in batches]
    cpython = [batch_pb2.Batch.FromString(b) for b in scripted_session.run()]
    assert len(cpython) >= 3  # the session spans several batches
    assert [_show(b) for b in pyodide] == [_show(b) for b in cpython]  # a readable difference
    assert pyodide == cpython
    assert [decode_batch(b) for b in pyodide] == [decode_batch(b) for b in cpython]


def test_pyodide_runs_python_3_14_with_pure_python_protobuf() -> None:
    pyodide_run = _pyodide_run()
    assert pyodide_run["python"].startswith("3.14.")
    assert pyodide_run["protobuf"].startswith("7.36.")
    assert pyodide_run["protobuf_implementation"] == "python"
    # installed from the wheel, not found on some path by chance
    assert pyodide_run["collector_file"].startswith("/lib/python3.14/site-packages/collector/")


def test_lock_lists_exactly_the_served_wheels_with_their_sha256() -> None:
    assets = _assets()
    lock = json.loads((assets / "pyodide-lock.json").read_text())
    wheels = sorted(p.name for p in assets.glob("*.whl"))
    assert sorted(p["file_name"] for p in lock["packages"].values()) == wheels
    assert lock["packages"]["pulsewire-collector"]["depends"] == ["protobuf"]
    for package in lock["packages"].values():
        data = (assets / package["file_name"]).read_bytes()
        assert package["sha256"] == hashlib.sha256(data).hexdigest(), package["file_name"]

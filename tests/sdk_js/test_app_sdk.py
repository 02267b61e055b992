"""The app SDK (sdk_js/app/) under Node's test runner: its unit tests, the same batch bytes as
the Python collector for one scripted visit, and delivery to a real `pulsewire serve` over
native gRPC and over gRPC-Web. Each Node test file runs in its own `node --test`; a failure here
carries Node's report."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.batching import BatchContext, Batcher, BatchLimits
from collector.events import Identify, PageView
from collector.track import tracked_event

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "server"))
from harness import (  # noqa: E402
    CART_RECOVERY,
    SITE_KEY,
    SITE_SECRET,
    free_port,
    write_sequences,
    write_templates,
)

APP_TESTS = REPO / "sdk_js" / "app" / "test"
TOKEN = "operator-token-for-app-sdk-tests"
# Enters never (no user adds 50 lines), but makes the engine remember every cart_add's time, so
# the Admin user view shows how many were applied.
CART_ADD_COUNTER = """
    id: cart-add-counter
    entry:
      event: purchase
      if: [{event: cart_add, within: 30d, at_least: 50}]
    steps: [{send: {template: cart-reminder}}]
"""
T0 = 1_767_225_600_000


def _node(test_file: str, env: dict[str, str], timeout_s: float = 240) -> None:
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


def _config(tmp: Path, grpc_listen: str, http_listen: str) -> Path:
    sequences = write_sequences(tmp / "seq", CART_RECOVERY, CART_ADD_COUNTER)
    path = tmp / "server.toml"
    path.write_text(textwrap.dedent(f"""
        [server]
        grpc_listen = "{grpc_listen}"
        http_listen = "{http_listen}"
        data_dir = "{tmp / 'data'}"
        shards = 4
        operator_token = "{TOKEN}"
        [sequences]
        dir = "{sequences}"
        [templates]
        dir = "{write_templates(tmp / 'templates')}"
        [smtp]
        port = {free_port()}
        [[sites]]
        key = "{SITE_KEY}"
        secret = "{SITE_SECRET}"
    """))
    return path


def _serve_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "server.cli", "serve", "--config", str(config),
            "--log-level", "warning"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A running server; yields where it listens, as the Node tests' environment."""
    tmp = tmp_path_factory.mktemp("app-sdk-server")
    log = tmp / "server.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(_serve_command(_config(tmp, "127.0.0.1:0", "127.0.0.1:0")),
                                   cwd=REPO, stdout=subprocess.PIPE, stderr=stderr)
    assert process.stdout is not None
    try:
        grpc_line = process.stdout.readline().decode()
        http_line = process.stdout.readline().decode()
        if not (grpc_line.startswith("pulsewire: gRPC on ")
                and http_line.startswith("pulsewire: HTTP on ")):
            pytest.fail(f"the server did not start: {grpc_line!r} {http_line!r}\n"
                        f"{log.read_text()[-3000:]}")
        yield {
            "PWTEST_GRPC": grpc_line.split(" on ", 1)[1].strip(),
            "PWTEST_HTTP": "http://" + http_line.split(" on ", 1)[1].strip(),
            "PWTEST_SITE_KEY": SITE_KEY,
            "PWTEST_SITE_SECRET": SITE_SECRET,
            "PWTEST_TOKEN": TOKEN,
        }
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


def test_unit_tests_of_the_app_sdk_pass() -> None:
    _node("unit.test.mjs", {})


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("transport", ["grpc", "grpc-web"])
def test_the_app_sdk_delivers_to_a_real_server(served: dict[str, str], transport: str,
                                               tmp_path: Path) -> None:
    # The restart test starts and stops a server of its own, on fixed ports so that the
    # client's transport finds it again.
    grpc_port, http_port = free_port(), free_port()
    restart = _config(tmp_path, f"127.0.0.1:{grpc_port}", f"127.0.0.1:{http_port}")
    _node("server.test.mjs", {
        **served,
        "PWTEST_TRANSPORT": transport,
        "PWTEST_RESTART_SERVE": json.dumps(_serve_command(restart)),
        "PWTEST_RESTART_GRPC": f"127.0.0.1:{grpc_port}",
        "PWTEST_RESTART_HTTP": f"http://127.0.0.1:{http_port}",
    })


# ---- one scripted visit, batched by both clients ----------------------------------------------
# Small limits so that every sealing rule fires: the event count, the byte cap (with strings of
# 1 to 4 UTF-8 bytes a character), the 2^32 ms gap, an event too large for any batch, and the
# queue cap dropping the oldest batches while the app is offline.

SCRIPT: dict[str, Any] = {
    "site_key": SITE_KEY,
    "device_id": "d-app-compare",
    "context": {"timezone": "Europe/Berlin", "locale": "de-DE", "viewport_width": 390,
                "viewport_height": 844, "device_class": "mobile", "currency": "USD",
                "collector": "app-js/0.1.0"},
    "limits": {"max_events": 4, "max_age_ms": 5000, "max_bytes": 340, "max_queued_batches": 3},
    "steps": [
        {"at": T0, "do": "page_view", "path": "/product/laptop", "title": "Laptop Pro 14",
         "referrer": "https://www.example.com/"},
        {"at": T0 + 900, "do": "track", "name": "product_view",
         "props": {"color": "slate", "stock": -3, "rating": 4.5, "gift": True, "note": None}},
        {"at": T0 + 2000, "do": "track", "name": "cart_add",
         "props": {"sku": "sku-123", "price": 19.99, "cart_id": "cart-9f2c"}},
        {"at": T0 + 2000, "do": "track", "name": "cart_add",
         "props": {"sku": "sku-7", "qty": 2, "price_minor": 129900, "cart_id": "cart-9f2c"}},
        {"at": T0 + 2500, "do": "track", "name": "cart_remove", "props": {"sku": "sku-7"}},
        {"at": T0 + 2600, "do": "snapshot"},
        {"at": T0 + 3000, "do": "flush"},
        {"at": T0 + 4000, "do": "page_view", "path": "/café/☕/😀", "title": "", "referrer": ""},
        {"at": T0 + 4100, "do": "identify", "user_id": "u-77", "email": "Ada@Example.com",
         "signature": "ab" * 32, "traits": {"plan": "pro"}},
        {"at": T0 + 4200, "do": "track", "name": "form", "props": {"name": "newsletter",
                                                                   "action": "signup"}},
        {"at": T0 + 4300, "do": "track", "name": "media", "props": {"asset": "intro.mp4",
                                                                    "action": "download"}},
        {"at": T0 + 4400, "do": "track", "name": "checkout_start",
         "props": {"cart_id": "cart-9f2c", "value": 42.5}},
        {"at": T0 + 4500, "do": "track", "name": "purchase",
         "props": {"order_id": "o-1", "value": 1500, "currency": "JPY", "cart_id": "cart-9f2c"}},
        {"at": T0 + 4600, "do": "track", "name": "huge", "props": {"blob": "x" * 500}},
        {"at": T0 + 4700, "do": "track", "name": "review",
         "props": {"text": "Très bien, 很好, 👍👍", "stars": 5}},
        {"at": T0 + 4800, "do": "track", "name": "review",
         "props": {"text": "Ünïcödé ünd möre", "stars": 4}},
        {"at": T0 + 4800 + 2**32 + 1, "do": "track", "name": "comeback", "props": {}},
        {"at": T0 + 2**32 + 9000, "do": "snapshot"},
        {"at": T0 + 2**32 + 9000, "do": "flush"},
        {"at": T0 + 2**32 + 9001, "do": "snapshot"},
    ],
}


class _DictStorage:
    def __init__(self) -> None:
        self.items: dict[str, str] = {}

    def get(self, key: str) -> str | None:
        return self.items.get(key)

    def set(self, key: str, value: str) -> None:
        self.items[key] = value


def _python_run(script: dict[str, Any]) -> dict[str, Any]:
    """What the Python collector's batcher makes of the script, steps as the app client takes
    them: a page view sets the path, identify is an event of its own."""
    storage = _DictStorage()
    context = BatchContext(**script["context"])
    batcher = Batcher(script["site_key"], script["device_id"], context=context, storage=storage,
                      limits=BatchLimits(**script["limits"]))
    path = ""
    out: dict[str, Any] = {"batches": [], "snapshots": []}
    for step in script["steps"]:
        at, action = step["at"], step["do"]
        if action == "page_view":
            path = step["path"]
            batcher.add(PageView(at, path, step["title"], step["referrer"]), path)
        elif action == "track":
            batcher.add(tracked_event(step["name"], step["props"], at, context.currency), path)
        elif action == "identify":
            batcher.add(Identify(at, step["user_id"], step["email"], step["signature"],
                                 tuple(step["traits"].items())), path)
        elif action == "flush":
            for batch in batcher.flush(at):
                out["batches"].append(base64.b64encode(batch.SerializeToString()).decode())
                batcher.ack(batch.seq, batch.stream)
        elif action == "snapshot":
            out["snapshots"].append(dict(sorted(storage.items.items())))
    out["oversize_events"] = batcher.oversize_events
    out["dropped_batches"] = batcher.queue.dropped_batches
    return out


def test_the_app_sdk_makes_the_same_bytes_as_the_python_collector(tmp_path: Path) -> None:
    expected = _python_run(SCRIPT)
    # The script exercises what it means to: both caps, a drop, an oversize event.
    assert expected["oversize_events"] == 1 and expected["dropped_batches"] == 1
    assert len(expected["batches"]) == 5
    (tmp_path / "script.json").write_text(json.dumps(SCRIPT))
    (tmp_path / "python.json").write_text(json.dumps(expected))
    _node("same_bytes.test.mjs", {"PWTEST_COMPARE_DIR": str(tmp_path)})


"""The app SDK (sdk_js/app/) under Node's test runner: its unit tests, and delivery to a real
`pulsewire serve` over native gRPC and over gRPC-Web (the same bytes as the Python collector:
test_app_sdk_same_bytes.py). Each Node test file runs in its own `node --test`; a failure here
carries Node's report."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

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
from node_tests import run_node_test as _node  # noqa: E402

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

"""The real parts a benchmark runs against, each its own OS process: `pulsewire serve` and
`pulsewire mailcatcher` (the SMTP server the server sends to).

`start(stack, tmp, shards=8)` writes a config into `tmp` (a data dir there, every example
sequence and segment, plus quick-cart: cart-recovery with a 1 s wait, entered only by carts
whose id starts "quick-", which the email measurement uses), imports the example catalog (the
templates look products up), starts both processes and waits until they print their ports;
the ExitStack stops them (SIGTERM, so the server drains and checkpoints its files). The site's
rate limit is lifted: the benchmarks measure the server, not its limiter. `demo=True` also
serves the demo shop and the web assets from build/web, for the Pyodide boot figure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.benchmarks.traffic import SITE_KEY, SITE_SECRET

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
START_TIMEOUT_S = 30.0
_GRPC_READY = re.compile(r"pulsewire: gRPC on [^:\s]+:(\d+)")
UNLIMITED = {"PULSEWIRE_INGEST__SITE_EVENTS_PER_S": "1e12",
             "PULSEWIRE_INGEST__SITE_BURST_EVENTS": "1000000000000"}


@dataclass(frozen=True)
class Server:
    pid: int
    grpc_port: int
    http_port: int
    mail_http_port: int
    data_dir: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def start(stack: ExitStack, tmp: Path, *, shards: int = 8, demo: bool = False,
          catalog: bool = True) -> Server:
    """`catalog=False` skips importing the example catalog (no email will be rendered)."""
    tmp.mkdir(parents=True, exist_ok=True)
    http_port = free_port()
    smtp_port, mail_http = start_mailcatcher(stack, tmp)
    config = _write_config(tmp, smtp_port, http_port, shards, demo)
    if catalog:
        import_catalog(config)
    server = spawn(stack, ["serve", "--config", str(config), "--log-level", "warning"],
                   tmp / "server", env=UNLIMITED)
    grpc_port = int(wait_for_output(server, tmp / "server.out", _GRPC_READY).group(1))
    return Server(server.pid, grpc_port, http_port, mail_http, tmp / "data")


def start_mailcatcher(stack: ExitStack, tmp: Path) -> tuple[int, int]:
    """`pulsewire mailcatcher` storing into tmp/mail; its SMTP and HTTP ports once it listens."""
    smtp_port, http_port = free_port(), free_port()
    mail = spawn(stack, ["mailcatcher", "--smtp", f"127.0.0.1:{smtp_port}",
                         "--http", f"127.0.0.1:{http_port}", "--store", str(tmp / "mail")],
                 tmp / "mailcatcher")
    wait_for_output(mail, tmp / "mailcatcher.out", re.compile(r"mailcatcher: SMTP on"))
    return smtp_port, http_port


def import_catalog(config: Path) -> None:
    """The example catalog into the data dir of `config` (the templates look products up)."""
    subprocess.run([sys.executable, "-m", "server.cli", "catalog", "import", "--config",
                    str(config), str(EXAMPLES / "catalog.csv")], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL, timeout=START_TIMEOUT_S)


def _write_config(tmp: Path, smtp_port: int, http_port: int, shards: int, demo: bool) -> Path:
    sequences = tmp / "sequences"
    shutil.copytree(EXAMPLES / "sequences", sequences, dirs_exist_ok=True)
    shutil.copytree(EXAMPLES / "segments", sequences / "segments", dirs_exist_ok=True)
    (sequences / "quick-cart.yaml").write_text(_quick_cart())
    web = (f'[web]\nassets_dir = "{REPO / "build" / "web"}"\ndemo_shop = true\n'
           f'demo_catalog = "{EXAMPLES / "catalog.csv"}"\n') if demo else ""
    config = tmp / "bench.toml"
    config.write_text(f"""
[server]
grpc_listen = "127.0.0.1:0"
http_listen = "127.0.0.1:{http_port}"
public_url = "http://127.0.0.1:{http_port}"
data_dir = "{tmp / 'data'}"
shards = {shards}

[sequences]
dir = "{sequences}"

[templates]
dir = "{EXAMPLES / 'templates'}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}

{web}
[[sites]]
key = "{SITE_KEY}"
secret = "{SITE_SECRET}"
""")
    return config


def _quick_cart() -> str:
    """cart-recovery with a 1 s wait, entered only by the email measurement's carts."""
    text = (EXAMPLES / "sequences" / "cart-recovery.yaml").read_text()
    swaps = [("id: cart-recovery", "id: quick-cart"), ("timeout: 60m", "timeout: 1s"),
             ("  event: cart_add\n", "  event: cart_add\n  where: {cart_id: quick-*}\n")]
    for old, new in swaps:
        if old not in text:
            raise SystemExit(f"examples/sequences/cart-recovery.yaml changed: no {old!r}")
        text = text.replace(old, new)
    return text


def spawn(stack: ExitStack, argv: list[str], log: Path,
          env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`launch`, stopped by `stack`."""
    child = launch(argv, log, env)
    stack.callback(stop, child, log.with_suffix(".err"))
    return child


def launch(argv: list[str], log: Path,
           env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`python -m server.cli ARGV`, its output in LOG.out and LOG.err; the caller stops it."""
    out, err = log.with_suffix(".out").open("wb"), log.with_suffix(".err").open("wb")
    # its own session: a Ctrl-C reaches only this process, which stops the children in order
    child = subprocess.Popen([sys.executable, "-m", "server.cli", *argv], cwd=REPO, stdout=out,
                             stderr=err, env={**os.environ, **(env or {})},
                             start_new_session=True)
    out.close()
    err.close()
    return child


def stop(child: subprocess.Popen[bytes], errors: Path | None = None) -> None:
    """Terminate, give it time to drain, then kill; show its stderr if it failed."""
    if child.poll() is None:
        child.terminate()
    try:
        code = child.wait(20)
    except subprocess.TimeoutExpired:
        child.kill()
        code = child.wait(5)
    text = errors.read_text().strip() if errors and errors.exists() else ""
    if code not in (0, -15) and text:
        print(f"{errors.name if errors else 'child'} (exit {code}):\n{text[-2000:]}")


def wait_for_output(child: subprocess.Popen[bytes], out: Path,
                    pattern: re.Pattern[str]) -> re.Match[str]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if found := pattern.search(out.read_text()):
            return found
        if child.poll() is not None:
            err = out.with_suffix(".err").read_text()
            raise SystemExit(f"{child.args!r} exited {child.returncode}:\n{err[-3000:]}")
        time.sleep(0.05)
    raise SystemExit(f"{child.args!r} not ready in {START_TIMEOUT_S:g} s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
        return json.load(answer)


def metrics(server: Server) -> str:
    """The server's Prometheus text."""
    url = f"http://127.0.0.1:{server.http_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as answer:
        text: str = answer.read().decode()
        return text

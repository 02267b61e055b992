"""Real parts for distributed-mode tests: a nats-server (Debian's) with JetStream on a free port
and its own store, server processes (`pulsewire serve`) with one config each, a real SMTP
server, and readers of the nodes' metrics and shard files."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import write_sequences, write_templates

from server.mail.mailcatcher import MailCatcher

REPO = Path(__file__).resolve().parents[2]
SITE_KEY, SITE_SECRET = "demo", "test-secret"
OPERATOR_TOKEN = "operator-token-for-tests"
NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} after {timeout_s} s")


class NatsServer:
    """nats-server -js on a fixed port and store, so it can be stopped and started again."""

    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.store = store
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


def node_config(tmp: Path, name: str, nats_url: str, smtp_port: int, sequences: Path,
                templates: Path, owners: dict[str, list[int]], *, failover: bool = True,
                lease_ttl_s: float = 3.0, snapshot_every_s: float = 2.0,
                shards: int = 8) -> Path:
    owner_lines = "\n".join(f'"{node}" = {list(owned)}' for node, owned in owners.items())
    path = tmp / f"{name}.toml"
    path.write_text(textwrap.dedent(f"""
        [server]
        grpc_listen = "127.0.0.1:0"
        http_listen = "127.0.0.1:0"
        data_dir = "{tmp / name}"
        shards = {shards}
        operator_token = "{OPERATOR_TOKEN}"
        [sequences]
        dir = "{sequences}"
        [templates]
        dir = "{templates}"
        [smtp]
        port = {smtp_port}
        [cluster]
        enabled = true
        node = "{name}"
        nats_url = "{nats_url}"
        failover = {str(failover).lower()}
        lease_ttl_s = {lease_ttl_s}
        snapshot_every_s = {snapshot_every_s}
        [cluster.owners]
    """) + owner_lines + textwrap.dedent(f"""

        [[sites]]
        key = "{SITE_KEY}"
        secret = "{SITE_SECRET}"
    """))
    return path


class Node:
    """One `pulsewire serve` process of the cluster."""

    def __init__(self, name: str, config: Path, data_dir: Path) -> None:
        self.name = name
        self.config = config
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.grpc_port = self.http_port = 0
        self.log = data_dir.parent / f"{name}.log"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server.cli", "serve", "--config", str(self.config),
                 "--log-level", "warning"], cwd=REPO, stdout=subprocess.PIPE, stderr=log)
        assert self.process.stdout is not None
        grpc_line = self.process.stdout.readline()
        http_line = self.process.stdout.readline()
        assert grpc_line.startswith(b"pulsewire: gRPC on "), (grpc_line, self.log.read_text())
        self.grpc_port = int(grpc_line.rsplit(b":", 1)[1])
        self.http_port = int(http_line.rsplit(b":", 1)[1])

    def kill(self) -> None:
        """kill -9: no goodbye, its leases lapse by themselves."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self._closed()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._closed()

    def _closed(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def caught_up(self) -> set[int]:
        """The shards this node holds and has replayed up to the log's end."""
        held = set()
        for line in self.metrics().splitlines():
            if line.startswith("pulsewire_shard_caught_up{") and line.endswith(" 1.0"):
                held.add(int(line.split('shard="')[1].split('"')[0]))
        return held

    def shard_rows(self, shard: int, query: str,
                   params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        path = self.data_dir / f"shard-{shard:03d}.sqlite"
        if not path.exists():
            return []
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return [tuple(r) for r in conn.execute(query, tuple(params))]


async def wait_for(check: Any, timeout_s: float, what: str) -> Any:
    """Poll `check` (sync; run in a thread) until truthy, or fail naming `what`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await asyncio.to_thread(check)
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.05)


def cart_nudge(timeout: str) -> str:
    """A sequence: a cart, then the reminder unless a purchase comes within `timeout`."""
    return f"""
    id: cart-nudge
    entry: {{event: cart_add}}
    key: user
    exit_on: [{{event: purchase}}]
    steps:
      - wait_for: {{event: purchase, timeout: {timeout}}}
        on_event: exit
      - send: {{template: cart-reminder, vars: {{discount_code: SAVE15}}}}
"""


@dataclass
class Cluster:
    nats: NatsServer
    catcher: MailCatcher
    nodes: list[Node]

    async def start(self, owners: dict[str, list[int]]) -> None:
        """Start every node; return once each holds and has replayed its own shards."""
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            await wait_for(lambda n=node: n.caught_up() == set(owners[n.name]), 15,
                           f"{node.name} holds its shards")


@asynccontextmanager
async def cluster(tmp: Path, sequences: Iterable[str], owners: dict[str, list[int]],
                  **node_settings: Any) -> AsyncIterator[Cluster]:
    """A nats-server, a mail catcher and one (not yet started) node per owner, all stopped on
    the way out: the nodes in threads, so the catcher on this loop answers their goodbyes."""
    nats = NatsServer(tmp / "nats")
    nats.start()
    try:
        sequence_dir = write_sequences(tmp / "seq", *sequences)
        templates = write_templates(tmp / "templates")
        async with MailCatcher(tmp / "mail", smtp_port=0, http_port=0) as catcher:
            nodes = [Node(name, node_config(tmp, name, nats.url, catcher.smtp_port, sequence_dir,
                                            templates, owners, **node_settings), tmp / name)
                     for name in owners]
            try:
                yield Cluster(nats, catcher, nodes)
            finally:
                for node in nodes:
                    await asyncio.to_thread(node.stop)
    finally:
        nats.stop()

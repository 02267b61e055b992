"""A cluster on this machine, for scripts/cluster-demo and the cluster benchmark: one nats-server
with JetStream (Debian's) and several `pulsewire serve` processes, one config each.

`start_nats(stack, store)` runs nats-server on a free port with its store in `store`;
`start_cluster(stack, directory, owners, ...)` writes a config per node (fixed ports, so a node
started again answers where it did; the shards the owners map gives out; the example sequences,
segments and templates as examples/demo.toml has them), starts the nodes and waits until each
holds its own shards, caught up. A `Node` can be killed (kill -9: no goodbye, its leases lapse
by themselves) and started again; its /metrics tell which shards it holds caught up and what it
accepted. The ExitStack stops everything, nodes first.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from scripts.benchmarks import server_stack
from scripts.benchmarks.server_stack import EXAMPLES

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
Owners = Mapping[str, list[int]]
T = TypeVar("T")


def start_nats(stack: ExitStack, store: Path) -> str:
    """nats-server -js on a free port; its URL once it listens."""
    if not Path(NATS_SERVER).exists():
        raise SystemExit("no nats-server: run ./scripts/setup (Debian's nats-server package)")
    store.mkdir(parents=True, exist_ok=True)
    port = server_stack.free_port()
    with (store.parent / "nats.err").open("wb") as err:
        process = subprocess.Popen([NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(port),
                                    "-sd", str(store)], stdout=subprocess.DEVNULL, stderr=err,
                                   start_new_session=True)
    stack.callback(server_stack.stop, process)
    wait_until(lambda: _listens(port), server_stack.START_TIMEOUT_S, "nats-server listens")
    return f"nats://127.0.0.1:{port}"


def _listens(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


@dataclass
class Node:
    """One `pulsewire serve` process of the cluster; `start` again after a `kill`."""

    name: str
    config: Path
    owned: frozenset[int]
    grpc_port: int
    http_port: int
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _log(self) -> Path:
        return self.config.parent / f"{self.name}-{self.starts}"

    def launch(self) -> None:
        self.starts += 1
        self.process = server_stack.launch(["serve", "--config", str(self.config),
                                            "--log-level", "warning"], self._log(), self.env)

    def wait_ready(self) -> None:
        """Until it prints its HTTP port (after the gRPC one): it answers from then on."""
        assert self.process is not None
        server_stack.wait_for_output(self.process, self._log().with_suffix(".out"), _READY)

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            server_stack.stop(self.process, self._log().with_suffix(".err"))
            self.process = None

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            return str(answer.read().decode())

    def caught_up(self) -> set[int]:
        """The shards it holds and has replayed to the log's end (none if it does not answer)."""
        try:
            text = self.metrics()
        except OSError:
            return set()
        return {int(line.split('shard="')[1].split('"')[0]) for line in text.splitlines()
                if line.startswith("pulsewire_shard_caught_up{") and line.endswith(" 1.0")}

    def holds_own(self) -> bool:
        """It holds exactly the shards the static map gives it, all caught up."""
        return self.caught_up() == self.owned

    def counter(self, name: str) -> float:
        """A counter's value in /metrics since this process started."""
        for line in self.metrics().splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
        return 0.0


_READY = re.compile(r"pulsewire: HTTP on [^:\s]+:(\d+)")


def start_cluster(stack: ExitStack, directory: Path, owners: Owners, *, nats_url: str,
                  smtp_port: int, site: tuple[str, str], lease_ttl_s: float = 3.0,
                  snapshot_every_s: float | None = None, catalog: bool = True,
                  env: dict[str, str] | None = None) -> list[Node]:
    """A node per key of `owners`, each holding its shards and caught up."""
    directory.mkdir(parents=True, exist_ok=True)
    nodes = []
    for name, shards in owners.items():
        grpc_port, http_port = server_stack.free_port(), server_stack.free_port()
        config = directory / f"{name}.toml"
        config.write_text(node_config(directory / name, name, owners, grpc_port, http_port,
                                      nats_url, smtp_port, site, lease_ttl_s,
                                      snapshot_every_s))
        nodes.append(Node(name, config, frozenset(shards), grpc_port, http_port, env or {}))
    stack.callback(stop_all, nodes)
    with ThreadPoolExecutor() as pool:  # every process starts at once, then each is waited for
        if catalog:
            list(pool.map(server_stack.import_catalog, [node.config for node in nodes]))
    for node in nodes:
        node.launch()
    for node in nodes:
        node.wait_ready()
    for node in nodes:
        wait_until(node.holds_own, server_stack.START_TIMEOUT_S, f"{node.name} holds its shards")
    return nodes


def stop_all(nodes: list[Node]) -> None:
    """Every node at once: one stopping after the other would first take the other's shards."""
    with ThreadPoolExecutor() as pool:
        list(pool.map(Node.stop, nodes))


def node_config(data_dir: Path, name: str, owners: Owners, grpc_port: int, http_port: int,
                nats_url: str, smtp_port: int, site: tuple[str, str], lease_ttl_s: float,
                snapshot_every_s: float | None) -> str:
    shards = sum(len(owned) for owned in owners.values())
    owner_lines = "\n".join(f'"{node}" = {sorted(owned)}' for node, owned in owners.items())
    snapshots = "" if snapshot_every_s is None else f"snapshot_every_s = {snapshot_every_s}"
    return f"""
[server]
grpc_listen = "127.0.0.1:{grpc_port}"
http_listen = "127.0.0.1:{http_port}"
public_url = "http://127.0.0.1:{http_port}"
data_dir = "{data_dir}"
shards = {shards}

[sequences]
dir = "{EXAMPLES}"

[templates]
dir = "{EXAMPLES / 'templates'}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
sender = "Pulse Shop <shop@example.com>"

[cluster]
enabled = true
node = "{name}"
nats_url = "{nats_url}"
failover = true
lease_ttl_s = {lease_ttl_s}
{snapshots}

[cluster.owners]
{owner_lines}

[[sites]]
key = "{site[0]}"
secret = "{site[1]}"
"""


def wait_until(check: Callable[[], T], timeout_s: float, what: str,
               every_s: float = 0.05) -> T:
    """Poll `check` until it returns something truthy, or stop the run naming `what`."""
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        if time.monotonic() > deadline:
            raise SystemExit(f"not within {timeout_s:g} s: {what}")
        time.sleep(every_s)
    return result


def owners_of(nodes: int, shards: int = 8) -> dict[str, list[int]]:
    """The static map: `shards` split into `nodes` runs, node-1 first."""
    per = shards // nodes
    return {f"node-{i + 1}": list(range(i * per, shards if i == nodes - 1 else (i + 1) * per))
            for i in range(nodes)}


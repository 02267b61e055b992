"""Starting a real server for a test: real gRPC on an ephemeral port, real shard files in a
temporary directory, the sequences a test gives, and a batch builder for the wire contract."""

from __future__ import annotations

import asyncio
import socket
import textwrap
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc

from collector.gen.pulsewire.v1 import batch_pb2, events_pb2
from collector.identity import sign_identity
from server.app import App, running
from server.clock import Clock
from server.config import Settings, load_settings
from server.rpc.gen.pulsewire.v1 import ingest_pb2_grpc

SITE_KEY, SITE_SECRET = "demo", "test-secret"

CART_RECOVERY = """
    id: cart-recovery
    group: recovery
    entry: {event: cart_add}
    key: user
    exit_on: [{event: purchase}]
    steps:
      - wait_for: {event: purchase, timeout: 60m}
        on_event: exit
      - send:
          template: cart-reminder
          vars: {discount_code: SAVE15}
"""


def write_sequences(directory: Path, *documents: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(documents):
        (directory / f"seq-{i}.yaml").write_text(textwrap.dedent(text))
    return directory


TEMPLATES = {
    "cart-reminder.subject.txt": "Still thinking about it, {{ user.email }}?",
    "cart-reminder.html": """<html><head><style>p { color: #333; }</style></head><body>
<p>You left {{ sku }} in your cart. Use <b>{{ discount_code }}</b>.</p>
<p><a href="https://shop.example.com/cart/{{ cart_id }}">Back to your cart</a></p>
<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>""",
}


def write_templates(directory: Path, files: dict[str, str] = TEMPLATES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def settings_for(tmp: Path, sequences: Path, **env: str) -> Settings:
    environ = {
        "PULSEWIRE_TEMPLATES__DIR": str(write_templates(tmp / "templates")),
        "PULSEWIRE_SERVER__GRPC_LISTEN": "127.0.0.1:0",
        "PULSEWIRE_SERVER__HTTP_LISTEN": "127.0.0.1:0",
        "PULSEWIRE_SERVER__DATA_DIR": str(tmp / "data"),
        "PULSEWIRE_SERVER__SHARDS": "4",
        "PULSEWIRE_SEQUENCES__DIR": str(sequences),
        "PULSEWIRE_SITES": f'[{{key="{SITE_KEY}", secret="{SITE_SECRET}"}}]',
        **env,
    }
    return load_settings(None, environ)


def write_config(tmp: Path, sequences: Path, *, smtp_port: int = 25, extra: str = "") -> Path:
    """A TOML config for a `pulsewire serve` process of its own (ports chosen by the system,
    shard files under tmp/data, the test templates, the harness's site), with `extra` TOML
    appended; for tests that start the server as a separate process."""
    path = tmp / "server.toml"
    path.write_text(textwrap.dedent(f"""
        [server]
        grpc_listen = "127.0.0.1:0"
        http_listen = "127.0.0.1:0"
        data_dir = "{tmp / 'data'}"
        shards = 4
        [sequences]
        dir = "{sequences}"
        [templates]
        dir = "{write_templates(tmp / 'templates')}"
        [smtp]
        port = {smtp_port}
        [[sites]]
        key = "{SITE_KEY}"
        secret = "{SITE_SECRET}"
    """) + textwrap.dedent(extra))
    return path


@asynccontextmanager
async def server(settings: Settings, clock: Clock | None = None) -> AsyncIterator[App]:
    async with running(settings, clock=clock) as app:
        yield app


@asynccontextmanager
async def ingest_client(app: App) -> AsyncIterator[ingest_pb2_grpc.IngestStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        yield ingest_pb2_grpc.IngestStub(channel)  # type: ignore[no-untyped-call]


class BatchBuilder:
    """Builds wire batches the way a collector would: a string table, deltas, one device."""

    def __init__(self, device: str = "device-1", site_key: str = SITE_KEY) -> None:
        self.device = device
        self.site_key = site_key
        self.seq = 0

    def batch(self, base_ms: int, events: Iterable[tuple[int, str, dict[str, Any]]], *,
              email: str | None = None, signed: bool = True, user_id: str = "",
              seq: int | None = None) -> batch_pb2.Batch:
        if seq is None:
            self.seq += 1
            seq = self.seq
        strings: list[str] = [""]

        def index(text: str) -> int:
            if text not in strings:
                strings.append(text)
            return strings.index(text)
        out = batch_pb2.Batch(site_key=self.site_key, device_id=self.device, seq=seq,
                              base_time_ms=base_ms)
        if email or user_id:
            out.identity.email = email or ""
            out.identity.user_id = user_id
            if signed:
                out.identity.signature = sign_identity(SITE_SECRET, user_id, email or "")
        previous = base_ms
        for at_ms, kind, fields in events:
            event = out.events.add(dt_ms=at_ms - previous)
            previous = at_ms
            _fill(event, kind, fields, index)
        out.strings.extend(strings)
        return out


def _fill(event: events_pb2.Event, kind: str, fields: dict[str, Any],
          index: Callable[[str], int]) -> None:
    if kind in {"page_view", "scroll", "dwell", "hover", "cart_add", "cart_remove",
                "checkout_start", "purchase"}:
        message = getattr(event, kind)
        message.SetInParent()
        for name, value in fields.items():
            setattr(message, name, index(value) if isinstance(value, str) else value)
        return
    event.custom.name = index(kind)
    for name, value in fields.items():
        prop = event.custom.props.add(key=index(name))
        if isinstance(value, str):
            prop.str = index(value)
        elif isinstance(value, bool):
            prop.flag = value
        elif isinstance(value, int):
            prop.int = value
        else:
            prop.num = value


async def eventually(check: Callable[[], Any], timeout_s: float = 10.0) -> Any:
    """Poll `check` (sync or async) until it returns something truthy, or fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"not true within {timeout_s} s: {check}")
        await asyncio.sleep(0.02)


async def rows(app: App, query: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
    """The rows a query gives, over every shard of the running server."""
    return [row for shard in app.shards for row in await shard.read(query, tuple(params))]


async def count(app: App, query: str, params: Iterable[Any] = ()) -> int:
    """A one-number query (count, sum) added up over every shard."""
    return sum(n for (n,) in await rows(app, query, params))


async def stat(app: App, counter: str) -> int:
    """A counter (entered, sent, suppressed:<reason>, ...) summed over sequences and shards."""
    return await count(app, "SELECT coalesce(sum(n), 0) FROM stats WHERE counter = ?",
                       (counter,))


def free_port() -> int:
    """A port nothing listens on now, for a server a test starts later."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

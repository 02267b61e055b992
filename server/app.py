"""Wiring: one lifespan that opens the shards, the listeners and the dispatcher, and closes them
in reverse, with a graceful gRPC stop that lets calls in flight finish and their acks go out.

    async with running(settings, clock=SystemClock()) as app:
        print(app.grpc_port)
        await app.stopped.wait()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from collector.gen.pulsewire.v1 import admin_pb2, ingest_pb2
from server.clock import Clock, SystemClock
from server.config import Settings
from server.engine import Engine, compile_rules
from server.rpc.gen.pulsewire.v1 import ingest_pb2_grpc
from server.rpc.ingest import Ingestor, IngestServicer
from server.sequences import SequenceSet, load_paths
from server.storage.shard import Shard

__all__ = ["App", "running"]

log = logging.getLogger("pulsewire.app")
GRPC_MESSAGE_LIMIT = 16 * 1024 * 1024  # batches over the configured limit get a clear answer
GRACE_S = 5.0


@dataclass
class App:
    """The running server: its ports, shards and the sequence set in force."""

    settings: Settings
    clock: Clock
    shards: list[Shard]
    sequence_set: SequenceSet
    engine: Engine
    grpc_port: int = 0
    http_port: int = 0
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def current_engine(self) -> Engine:
        return self.engine

    def swap_sequences(self, sequence_set: SequenceSet) -> None:
        """Put a whole new, valid set in force (the caller validated it)."""
        self.sequence_set = sequence_set
        self.engine = Engine(compile_rules(sequence_set))


def load_sequences(settings: Settings) -> SequenceSet:
    sequence_set, _ = load_paths([Path(settings.sequences.dir)])
    return sequence_set


@asynccontextmanager
async def running(settings: Settings, *, clock: Clock | None = None) -> AsyncIterator[App]:
    clock = clock or SystemClock()
    sequence_set = load_sequences(settings)
    app = App(settings, clock, [], sequence_set, Engine(compile_rules(sequence_set)))
    async with AsyncExitStack() as stack:
        data_dir = Path(settings.server.data_dir)
        for index in range(settings.server.shards):
            shard = Shard(index, data_dir / f"shard-{index:03d}.sqlite", app.current_engine,
                          clock, dedup_ttl_ms=settings.ingest.dedup_ttl_s * 1000)
            await shard.open()
            stack.push_async_callback(shard.close)
            app.shards.append(shard)
        ingestor = Ingestor(settings, app.shards, clock)
        app.grpc_port = await _start_grpc(stack, settings, ingestor)
        log.info("pulsewire: gRPC on port %d, %d shards in %s", app.grpc_port,
                 len(app.shards), data_dir)
        yield app


async def _start_grpc(stack: AsyncExitStack, settings: Settings, ingestor: Ingestor) -> int:
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", GRPC_MESSAGE_LIMIT),
        ("grpc.so_reuseport", 0),
    ])
    ingest_pb2_grpc.add_IngestServicer_to_server(  # type: ignore[no-untyped-call]
        IngestServicer(ingestor), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (
        ingest_pb2.DESCRIPTOR.services_by_name["Ingest"].full_name,
        admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    reflection.enable_server_reflection(names, server)
    port = int(server.add_insecure_port(settings.server.grpc_listen))
    if port == 0:
        raise OSError(f"cannot listen for gRPC on {settings.server.grpc_listen}")
    await server.start()
    for name in ("", names[0]):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop() -> None:
        await health_servicer.enter_graceful_shutdown()
        await server.stop(GRACE_S)

    stack.push_async_callback(stop)
    return port

"""Wiring: one lifespan that opens the shards, the listeners and the dispatcher, and closes them
in reverse, with a graceful gRPC stop that lets calls in flight finish and their acks go out.

    async with running(settings, clock=SystemClock()) as app:
        print(app.grpc_port)
        await app.stopped.wait()
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from collector.gen.pulsewire.v1 import admin_pb2, ingest_pb2
from server.clock import Clock, SystemClock
from server.config import Settings
from server.dispatch import Dispatcher
from server.engine import Engine, Event, compile_rules
from server.ingest import Ingestor
from server.mail.catalog import Catalog
from server.mail.message import DkimSigner
from server.mail.render import Templates
from server.mail.tokens import LinkSigner
from server.metrics import Metrics
from server.modes import Mode, single_process
from server.operator_actions import OperatorActions
from server.rpc.admin import AdminServicer
from server.rpc.gen.pulsewire.v1 import admin_pb2_grpc, ingest_pb2_grpc
from server.rpc.ingest import IngestServicer
from server.rpc.status import status_of
from server.sequences import SequenceSet, load_paths
from server.storage.shard import Shard, Shards
from server.web.assets import StaticAssets, asset_routes
from server.web.collect import Collect, collect_routes
from server.web.console import Console, ConsoleSources, LiveFeed, console_routes
from server.web.grpc_web import grpc_web_routes
from server.web.segment_source import SegmentSource, segment_routes
from server.web.serving import serve_http
from server.web.tracking import Tracking, build_web_app

__all__ = ["App", "running"]

log = logging.getLogger("pulsewire.app")
GRPC_MESSAGE_LIMIT = 16 * 1024 * 1024  # batches over the configured limit get a clear answer
GRACE_S = 5.0


@dataclass
class App:
    """The running server: its ports, shards and the sequence set in force."""

    settings: Settings
    clock: Clock
    shards: Shards
    sequence_set: SequenceSet
    engine: Engine
    grpc_port: int = 0
    http_port: int = 0
    collect: Collect | None = None
    ingestor: Ingestor | None = None
    stopped: asyncio.Event = field(default_factory=asyncio.Event)
    metrics: Metrics = field(default_factory=Metrics)
    signer: LinkSigner | None = None
    templates: Templates | None = None
    dispatcher: Dispatcher | None = None
    mode: Mode | None = None
    live: LiveFeed | None = None  # the console's live feed, when the console is on
    console_port: int = 0  # when the console has a listener of its own

    async def apply_events(self, user_key: str, events: Iterable[Event], device: str = "",
                           seq: int = 0) -> None:
        """Events for a user that did not come in a batch (opens, clicks, bounces): into
        the user's shard, or in the distributed mode onto its log."""
        assert self.mode is not None, "the mode is chosen before anything applies events"
        await self.mode.apply_events(user_key, events, device, seq)

    def reload(self) -> list[str]:
        """Load sequences and templates again; a set with any fault is refused whole
        (InvalidSequence / InvalidTemplates) and what runs stays in force."""
        sequence_set = load_sequences(self.settings)
        templates = load_templates(self.settings, Path(self.settings.server.data_dir))
        self.swap_sequences(sequence_set)
        self.templates = templates
        log.info("reloaded %d sequences", len(sequence_set.sequences))
        return sorted(s.id for s in sequence_set.sequences)

    def current_templates(self) -> Templates:
        assert self.templates is not None, "templates are loaded before the dispatcher starts"
        return self.templates

    def outbox_written(self, _shard: int) -> None:
        if self.dispatcher is not None:
            self.dispatcher.poke()

    def current_engine(self) -> Engine:
        return self.engine

    def swap_sequences(self, sequence_set: SequenceSet) -> None:
        """Put a whole new, valid set in force (the caller validated it)."""
        self.sequence_set = sequence_set
        self.engine = engine_for(self.settings, sequence_set)


def engine_for(settings: Settings, sequence_set: SequenceSet) -> Engine:
    return Engine(compile_rules(sequence_set, settings.scoring),
                  global_holdout=settings.holdout.global_fraction)


def link_secret(configured: str, data_dir: Path) -> bytes:
    """The configured secret, else one made once and kept in the data directory (mode 0600),
    so links in emails already sent keep working across restarts."""
    if configured:
        return configured.encode()
    path = data_dir / "link-secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def load_templates(settings: Settings, data_dir: Path) -> Templates:
    templates = Templates(Path(settings.templates.dir), Catalog.open(data_dir / "catalog.sqlite"))
    templates.load()
    return templates


def dkim_signer(settings: Settings) -> DkimSigner | None:
    smtp = settings.smtp
    if smtp.dkim_selector and smtp.dkim_key_file:
        return DkimSigner.from_files(smtp.dkim_selector, smtp.dkim_key_file, smtp.sender)
    return None


def load_sequences(settings: Settings) -> SequenceSet:
    sequence_set, _ = load_paths([Path(settings.sequences.dir)])
    return sequence_set


@asynccontextmanager
async def running(settings: Settings, *, clock: Clock | None = None) -> AsyncIterator[App]:
    clock = clock or SystemClock()
    sequence_set = load_sequences(settings)
    app = App(settings, clock, [], sequence_set, engine_for(settings, sequence_set))
    if settings.console.enabled:
        app.live = LiveFeed(clock.now_ms)
    async with AsyncExitStack() as stack:
        data_dir = Path(settings.server.data_dir)

        async def open_shard(index: int,
                             timers_until: Callable[[], int] | None = None) -> Shard:
            shard = Shard(index, data_dir / f"shard-{index:03d}.sqlite", app.current_engine, clock,
                          dedup_ttl_ms=settings.ingest.dedup_ttl_s * 1000,
                          on_outbox=app.outbox_written,
                          observe=app.metrics.shard_observer(app.live.applied if app.live
                                                             else None),
                          timers_until=timers_until)
            await shard.open()
            return shard

        metrics = app.metrics
        mode = await stack.enter_async_context(_mode(settings, clock, open_shard))
        app.mode, app.shards = mode, mode.shards
        mode.watch(metrics)
        ingestor = Ingestor(settings, mode.delivery, clock,
                            on_rejected=lambda why: metrics.batches_rejected.labels(why).inc(),
                            on_accepted=metrics.events_in.inc, on_bot=metrics.bot_events.inc)
        metrics.watch_queues(lambda: [(s.index, s.queue_depth) for s in app.shards])
        metrics.resumed_streams.set_function(lambda: len(ingestor.resumed))
        admin = OperatorActions(app.shards, mode.reach, app.reload, clock.now_ms,
                                lambda: app.engine.rules)
        app.ingestor = ingestor
        app.grpc_port = await _start_grpc(stack, settings, ingestor, admin)
        secret = link_secret(settings.server.link_secret, data_dir)
        app.signer = LinkSigner(secret)
        app.templates = load_templates(settings, data_dir)
        dispatcher = Dispatcher(settings, app.shards, app.current_templates, app.signer, clock,
                                metrics, mode.claims, app.apply_events, dkim_signer(settings))
        await dispatcher.start()
        stack.push_async_callback(dispatcher.stop)
        app.dispatcher = dispatcher
        dispatcher.poke()  # rows left queued by a previous run
        tracking = Tracking(app.signer, app.shards, clock, metrics, app.apply_events,
                            settings.server.operator_token)
        app.collect = Collect(settings, ingestor, clock, metrics)
        await stack.enter_async_context(app.collect.releasing())
        console = _console(app, admin, secret)
        routes = [*grpc_web_routes(settings, ingestor, status_of),
                  *collect_routes(app.collect),
                  *asset_routes(StaticAssets(Path(settings.web.assets_dir))),
                  *_demo_shop(settings),
                  *(segment_routes(SegmentSource(settings, ingestor, metrics))
                    if settings.segment.enabled else []),
                  *(console if not settings.console.listen else [])]
        if console and settings.console.listen:
            app.console_port = await stack.enter_async_context(
                serve_http(Starlette(routes=console), settings.console.listen))
        app.http_port = await stack.enter_async_context(
            serve_http(build_web_app(tracking, lambda: routes), settings.server.http_listen))
        log.info("pulsewire: gRPC on port %d, HTTP on port %d, %d shards in %s",
                 app.grpc_port, app.http_port, len(app.shards), data_dir)
        yield app


def _mode(settings: Settings, clock: Clock,
          open_shard: Callable[[int, Callable[[], int] | None], Awaitable[Shard]],
          ) -> AbstractAsyncContextManager[Mode]:
    """The mode this process runs in, chosen once, here."""
    if settings.cluster.enabled:
        from server.cluster import cluster_node  # distributed mode only

        return cluster_node(settings, clock, open_shard)
    return single_process(settings.server.shards, open_shard, clock)


def _console(app: App, admin: OperatorActions, secret: bytes) -> list[BaseRoute]:
    if app.live is None:
        return []
    sources = ConsoleSources(app.settings, admin, lambda: app.engine.rules, app.shards,
                             app.live, app.metrics, app.current_templates, app.reload,
                             app.clock.now_ms, secret)
    return console_routes(Console(sources))


def _demo_shop(settings: Settings) -> list[BaseRoute]:
    if not settings.web.demo_shop or not settings.sites:
        return []
    from server.web.demo_shop import demo_shop_routes  # demo mode only

    site = settings.sites[0]
    attrs = {"data-mode": settings.web.demo_loader_mode}
    if settings.web.demo_loader_endpoint:
        attrs["data-endpoint"] = settings.web.demo_loader_endpoint
    return demo_shop_routes(catalog_csv=Path(settings.web.demo_catalog), site_key=site.key,
                            site_secret=site.secret, loader_attrs=attrs,
                            mailcatcher_url=settings.web.mailcatcher_url or None)


async def _start_grpc(stack: AsyncExitStack, settings: Settings, ingestor: Ingestor,
                      admin: OperatorActions) -> int:
    limits = settings.ingest
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", GRPC_MESSAGE_LIMIT),
        ("grpc.so_reuseport", 0),
        ("grpc.max_connection_idle_ms", int(limits.stream_idle_s * 1000)),  # idle connections
    ])
    ingest_pb2_grpc.add_IngestServicer_to_server(  # type: ignore[no-untyped-call]
        IngestServicer(ingestor, limits.stream_idle_s), server)
    admin_pb2_grpc.add_AdminServicer_to_server(  # type: ignore[no-untyped-call]
        AdminServicer(admin, settings.server.operator_token, limits.refused_keys_per_minute),
        server)
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

"""What a page sends without gRPC-Web: batches by beacon, raw signals, and its collector config.

How this works:
- `POST /pw/v1/beacon`: the browser host's last word on page hide. `navigator.sendBeacon` and
  `fetch(keepalive)` can only skip the CORS preflight with a safelisted content type (text/
  plain), which gRPC-Web is not; so the beacon carries the same gRPC-Web data frames (one batch
  each) under text/plain. Nobody reads the answer: the page keeps the batches in its retry queue
  and the next page load resends them, deduplicated by (device, stream, seq).
- `POST /pw/v1/signals`: raw signals (`collector/raw_signals.py`) from a loader whose page
  closed before Pyodide booted, or from a page in edge mode pointed here. The same collector
  code as in the browser and the edge (`collector.edge.PageLoads`) turns them into batches, and
  they are ingested like any other. Chunks of a page load may come in any order and more than
  once: each carries its history, so each is applied exactly once, and one that arrives before
  the chunk it follows is held (202) until that one comes or `hold_ms` passes. Every chunk is
  counted by outcome in /metrics (`pulsewire_raw_chunks`), every batch made from one by what
  the ingest said (`pulsewire_raw_batches`); a batch refused for a passing reason (rate, shard
  closing) stays queued and goes again with the page load's next chunk.
- `GET /pw/v1/config/{site}`: the collector settings of a site (thresholds, idle time, batch
  age), which the browser host and edge workers read at boot.
A request whose Origin is neither one of the site's origins nor this server's own is refused
(403) and changes nothing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collector.batching import BatchLimits
from collector.edge import EdgeSettings, PageLoads, Taken
from collector.gen.pulsewire.v1 import batch_pb2
from collector.raw_signals import MAX_PAYLOAD_BYTES, InvalidSignals, parse_payload
from server.clock import Clock
from server.config import Settings
from server.errors import InvalidBatch, PulsewireError, RateLimited, Unauthenticated
from server.ingest import Ingestor, ack_of
from server.metrics import Metrics
from server.web.bodies import BodyTooLarge, BodyTooSlow, bounded_body
from server.web.grpc_web import (
    cors_headers,
    decode_batch_frame,
    frames,
    origin_allowed,
    own_origin,
)

__all__ = ["SERVER_RAW_COLLECTOR", "Collect", "collect_routes"]

log = logging.getLogger("pulsewire.web")
SERVER_RAW_COLLECTOR = "python-server/0.1.0"
_MAX_BEACON_BYTES = 128 * 1024
_RELEASE_EVERY_S = 0.25
_STATUS = {"applied": 204, "duplicate": 204, "bot": 204, "held": 202}


class Collect:
    def __init__(self, settings: Settings, ingestor: Ingestor, clock: Clock,
                 metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.counts: Counter[str] = Counter()
        self._ingestor = ingestor
        self._clock = clock
        self._metrics = metrics or Metrics()
        self._loads: dict[str, PageLoads] = {
            site.key: PageLoads(EdgeSettings(signals=site.signals,
                                             limits=BatchLimits(max_age_ms=site.batch_max_age_ms),
                                             collector_name=SERVER_RAW_COLLECTOR))
            for site in settings.sites}

    def dropped_bots(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for loads in self._loads.values():
            total.update(loads.dropped)
        return total

    @asynccontextmanager
    async def releasing(self) -> AsyncIterator[None]:
        """While inside, held chunks are applied once they waited long enough."""
        task = asyncio.create_task(self._release_loop())
        try:
            yield
        finally:
            task.cancel()

    async def _release_loop(self) -> None:
        while True:
            await asyncio.sleep(_RELEASE_EVERY_S)
            await self.release_due()

    async def release_due(self) -> None:
        now_ms = self._clock.now_ms()
        for loads in self._loads.values():
            if (deadline := loads.next_deadline_ms()) is not None and deadline <= now_ms:
                before = loads.outcomes["released"]
                released = loads.due(now_ms)
                self._metrics.raw_chunks.labels("released").inc(
                    loads.outcomes["released"] - before)
                for batch in released:
                    await self._forward(loads, batch)

    async def beacon(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        cors = cors_headers(self.settings, origin)
        try:
            body = await bounded_body(request, _MAX_BEACON_BYTES)
        except BodyTooLarge as err:
            return Response(str(err), 413, headers=cors)
        except BodyTooSlow as err:
            return Response(str(err), 408, headers=cors)
        peer = request.client.host if request.client else ""
        accepted, refused = 0, []
        try:
            batches = [decode_batch_frame(m) for m in frames(body)]
        except InvalidBatch as err:
            return Response(str(err), 400, headers=cors)
        for batch in batches:
            if not origin_allowed(self.settings, self._ingestor.site_key_of(batch), origin,
                                  own_origin(request), resumed=bool(batch.resume)):
                refused.append(f"seq {batch.seq}: origin not allowed")
                continue
            try:
                ack = await self._ingestor.accept(batch, peer)
            except PulsewireError as err:
                refused.append(f"seq {batch.seq}: {err}")
                continue
            accepted += ack.accepted
        self.counts["beacon_batches"] += len(batches)
        return JSONResponse({"accepted": accepted, "refused": refused}, headers=cors)

    async def signals(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        cors = cors_headers(self.settings, origin)
        try:
            payload = parse_payload(await bounded_body(request, MAX_PAYLOAD_BYTES))
        except BodyTooLarge as err:
            return self._refused("too_large", 413, str(err), cors)
        except BodyTooSlow as err:
            return self._refused("too_slow", 408, str(err), cors)
        except InvalidSignals as err:
            return self._refused("invalid", 400, str(err), cors)
        loads = self._loads.get(payload.site)
        if loads is None:
            try:
                await self._ingestor.refused_key(request.client.host if request.client else "",
                                                 Unauthenticated("unknown site key"))
            except RateLimited as err:
                return self._refused("refused_peer", 429, str(err), cors)
            return self._refused("unknown_site", 401, "site: unknown site key", cors)
        if not origin_allowed(self.settings, payload.site, origin, own_origin(request)):
            return self._refused("origin", 403, "origin: not one of the site's origins", cors)
        expired = loads.expired_unacked
        try:
            taken = loads.accept(payload, user_agent=request.headers.get("user-agent", ""),
                                 accept_language=request.headers.get("accept-language", ""),
                                 now_ms=self._clock.now_ms())
        except InvalidSignals as err:
            return self._refused("invalid", 400, str(err), cors)
        finally:  # batches of page loads forgotten before the server took them
            self._metrics.raw_batches.labels("expired").inc(loads.expired_unacked - expired)
        self.counts["raw_chunks"] += 1
        self._metrics.raw_chunks.labels(taken.outcome).inc()
        for batch in taken.batches:
            await self._forward(loads, batch)
        return Response(status_code=_STATUS[taken.outcome],
                        headers={**cors, "pw-outcome": _outcome(taken)})

    def _refused(self, reason: str, status: int, message: str,
                 cors: dict[str, str]) -> Response:
        self.counts[f"raw_{reason}"] += 1
        self._metrics.raw_chunks.labels(reason).inc()
        return Response(message, status, headers=cors)

    async def _forward(self, loads: PageLoads, batch: batch_pb2.Batch) -> None:
        try:
            ack = await self._ingestor.accept(batch)
        except InvalidBatch as err:  # it will never pass: drop it, counted
            log.warning("raw signals made a refused batch: %s", err)
            self._metrics.raw_batches.labels("refused").inc()
            ack = ack_of(batch)
        except PulsewireError:
            self._metrics.raw_batches.labels("deferred").inc()
            return  # passing (rate, shard closing): the next chunk sends it again
        else:
            self._metrics.raw_batches.labels("duplicate" if ack.duplicate else "accepted").inc()
        loads.ack(ack, batch.site_key)

    async def config(self, request: Request) -> Response:
        site = self.settings.site(request.path_params["site"])
        if site is None:
            return Response("unknown site key", 404)
        body = {"signals": dataclasses.asdict(site.signals),
                "batch_max_age_ms": site.batch_max_age_ms}
        return JSONResponse(body, headers={**cors_headers(self.settings,
                                                          request.headers.get("origin")),
                                           "cache-control": "public, max-age=60"})


def _outcome(taken: Taken) -> str:
    return f"{taken.outcome}: {taken.reason}" if taken.reason else taken.outcome


def collect_routes(collect: Collect) -> list[Route]:
    return [Route("/pw/v1/beacon", collect.beacon, methods=["POST"]),
            Route("/pw/v1/signals", collect.signals, methods=["POST"]),
            Route("/pw/v1/config/{site}", collect.config, methods=["GET"])]

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
  they are ingested like any other; a batch that fails for a passing reason stays queued and
  goes again with the page load's next chunk.
- `GET /pw/v1/config/{site}`: the collector settings of a site (thresholds, idle time, batch
  age), which the browser host and edge workers read at boot.
A request whose Origin is neither one of the site's origins nor this server's own is refused
(403) and changes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collector.batching import BatchLimits
from collector.edge import EdgeSettings, PageLoads
from collector.gen.pulsewire.v1 import batch_pb2
from collector.raw_signals import MAX_PAYLOAD_BYTES, InvalidSignals, parse_payload
from server.clock import Clock
from server.config import Settings
from server.errors import InvalidBatch, PulsewireError
from server.rpc.ingest import Ingestor, ack_of
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


class Collect:
    def __init__(self, settings: Settings, ingestor: Ingestor, clock: Clock) -> None:
        self.settings = settings
        self.counts: Counter[str] = Counter()
        self._ingestor = ingestor
        self._clock = clock
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

    async def beacon(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        cors = cors_headers(self.settings, origin)
        body = await request.body()
        if len(body) > _MAX_BEACON_BYTES:
            return Response(f"beacon: at most {_MAX_BEACON_BYTES} bytes", 413, headers=cors)
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
                ack = await self._ingestor.accept(batch)
            except PulsewireError as err:
                refused.append(f"seq {batch.seq}: {err}")
                continue
            accepted += ack.accepted
        self.counts["beacon_batches"] += len(batches)
        return JSONResponse({"accepted": accepted, "refused": refused}, headers=cors)

    async def signals(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        cors = cors_headers(self.settings, origin)
        body = await request.body()
        try:
            payload = parse_payload(body[:MAX_PAYLOAD_BYTES + 1])
        except InvalidSignals as err:
            self.counts["raw_invalid"] += 1
            return Response(str(err), 400, headers=cors)
        loads = self._loads.get(payload.site)
        if loads is None:
            return Response("site: unknown site key", 401, headers=cors)
        if not origin_allowed(self.settings, payload.site, origin, own_origin(request)):
            return Response("origin: not one of the site's origins", 403, headers=cors)
        try:
            batches = loads.accept(payload, user_agent=request.headers.get("user-agent", ""),
                                   accept_language=request.headers.get("accept-language", ""),
                                   now_ms=self._clock.now_ms())
        except InvalidSignals as err:
            self.counts["raw_invalid"] += 1
            return Response(str(err), 400, headers=cors)
        self.counts["raw_chunks"] += 1
        for batch in batches:
            await self._forward(loads, batch)
        return Response(status_code=204, headers=cors)

    async def _forward(self, loads: PageLoads, batch: batch_pb2.Batch) -> None:
        try:
            ack = await self._ingestor.accept(batch)
        except InvalidBatch as err:  # it will never pass: drop it
            log.warning("raw signals made a refused batch: %s", err)
            ack = ack_of(batch)
        except PulsewireError:
            return  # passing (rate, shard closing): the next chunk sends it again
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


def collect_routes(collect: Collect) -> list[Route]:
    return [Route("/pw/v1/beacon", collect.beacon, methods=["POST"]),
            Route("/pw/v1/signals", collect.signals, methods=["POST"]),
            Route("/pw/v1/config/{site}", collect.config, methods=["GET"])]

"""The Segment-spec HTTP source: what analytics.js, RudderStack and Segment's server libraries
send, on the HTTP listener, taken in by the one ingest core (server/ingest/segment.py makes
each message a batch).

- `POST /v1/{track,identify,page,screen,alias,group,batch}` and the short forms analytics.js
  uses (`/v1/t`, `/v1/i`, `/v1/p`, `/v1/s`, `/v1/a`, `/v1/g`, `/v1/b`); JSON, or gzip of it
  (`Content-Encoding: gzip`); browsers may send `text/plain` (no preflight).
- The write key: HTTP Basic with it as the user name, or `writeKey` in the body. A site's `key`
  is public (browsers: an identify is mailable only with the site's signature), its
  `server_key` secret (backends: identities are trusted). An unknown key is 401, and past the
  refused-key budget each one waits, as for gRPC.
- Limits as Segment's: 32 KB a message, 500 KB a batch; a body that is not JSON, too large, or
  with a message over its limit is 400 with the reason and applies nothing. Otherwise 200: the
  messages that fit the spec apply, and the answer counts those that did not
  (`{"success": true, "accepted": n, "errors": n, "problems": [...]}`); /metrics counts both
  (`pulsewire_segment_messages{outcome}`).
- A batch's messages of one device apply in order; devices go in parallel.
- `GET /v1/projects/{writeKey}/settings`: the settings analytics.js fetches first, naming this
  server as its API host.
CORS: a browser's request must come from one of its site's origins (or this server's own).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import zlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.config import Settings, SiteSettings
from server.errors import PulsewireError, Unauthenticated
from server.ingest import Ingestor
from server.ingest.segment import DEFAULT_EVENTS, MessageRefused, message_batch
from server.metrics import Metrics
from server.web.bodies import BodyTooLarge, BodyTooSlow, bounded_body
from server.web.grpc_web import origin_allowed, own_origin

__all__ = ["MAX_BATCH_BYTES", "MAX_MESSAGE_BYTES", "SegmentSource", "segment_routes"]

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
_SHORT = {"t": "track", "i": "identify", "p": "page", "s": "screen", "a": "alias",
          "g": "group", "b": "batch"}
_KINDS = {*_SHORT.values()}
_PROBLEMS_SHOWN = 20


class SegmentSource:
    def __init__(self, settings: Settings, ingestor: Ingestor, metrics: Metrics) -> None:
        self.settings = settings
        self._ingestor = ingestor
        self._metrics = metrics
        self._events = dict(settings.segment.events) or DEFAULT_EVENTS

    def site_of(self, write_key: str) -> tuple[SiteSettings, bool] | None:
        """The site a write key names, and whether it is the site's secret server key."""
        for site in self.settings.sites:
            if site.server_key and _same(write_key, site.server_key):
                return site, True
            if _same(write_key, site.key):
                return site, False
        return None

    async def take(self, messages: list[Any], site: SiteSettings, trusted: bool,
                   peer: str) -> dict[str, Any]:
        """Every message in, devices in parallel, each device's in order."""
        problems: list[str] = []
        lanes: dict[str, list[tuple[int, Any]]] = {}
        for i, message in enumerate(messages):
            try:
                batch = message_batch(message if isinstance(message, dict) else {},
                                      site_key=site.key, site_secret=site.secret,
                                      trusted=trusted, events=self._events)
            except MessageRefused as err:
                problems.append(f"batch[{i}]: {err}")
                continue
            lanes.setdefault(batch.device_id, []).append((i, batch))

        async def lane(items: list[tuple[int, Any]]) -> None:
            for i, batch in items:
                try:
                    await self._ingestor.accept(batch, peer)
                except PulsewireError as err:
                    problems.append(f"batch[{i}]: {err}")

        await asyncio.gather(*(lane(items) for items in lanes.values()))
        accepted = len(messages) - len(problems)
        self._metrics.segment_messages.labels("accepted").inc(accepted)
        if problems:
            self._metrics.segment_messages.labels("refused").inc(len(problems))
        return {"success": True, "accepted": accepted, "errors": len(problems),
                "problems": sorted(problems)[:_PROBLEMS_SHOWN]}


def segment_routes(source: SegmentSource) -> list[Route]:
    async def receive(request: Request) -> Response:
        return await _receive(source, request)

    async def settings(request: Request) -> Response:
        return _settings(source, request)

    async def preflight(request: Request) -> Response:
        return Response(status_code=204, headers={
            **_cors(source, request.headers.get("origin")),
            "access-control-allow-methods": "POST, OPTIONS",
            "access-control-allow-headers":
                "content-type, authorization, content-encoding, x-retry-count",
            "access-control-max-age": "600"})

    return [Route("/v1/projects/{write_key}/settings", settings, methods=["GET"]),
            Route("/v1/{kind}", receive, methods=["POST"]),
            Route("/v1/{kind}", preflight, methods=["OPTIONS"])]


async def _receive(source: SegmentSource, request: Request) -> Response:
    kind = request.path_params["kind"]
    kind = _SHORT.get(kind, kind)
    origin = request.headers.get("origin")
    cors = _cors(source, origin)
    if kind not in _KINDS:
        return _refused(404, f"no /v1/{request.path_params['kind']}: one of "
                        f"{', '.join(sorted(_KINDS))}", cors)
    limit = MAX_BATCH_BYTES if kind == "batch" else MAX_MESSAGE_BYTES
    try:
        body = await _body(request, limit)
        document = json.loads(body)
    except (BodyTooLarge, BodyTooSlow, ValueError) as err:
        return _refused(400, f"body: {err}", cors)
    if not isinstance(document, dict):
        return _refused(400, "body: a JSON object", cors)
    write_key = _basic_user(request.headers.get("authorization", "")) or str(
        document.get("writeKey") or "")
    found = source.site_of(write_key)
    peer = request.client.host if request.client else ""
    if found is None:
        await source._ingestor.refused_key(peer, Unauthenticated("unknown write key"))
        return _refused(401, "unknown write key", cors)
    site, trusted = found
    if not origin_allowed(source.settings, site.key, origin, own_origin(request)):
        return _refused(403, f"origin {origin} is not one of the site's", {})
    messages = _messages(kind, document, len(body) <= MAX_MESSAGE_BYTES)
    if isinstance(messages, str):
        return _refused(400, messages, cors)
    answer = await source.take(messages, site, trusted, peer)
    return JSONResponse(answer, headers=cors)


def _messages(kind: str, document: dict[str, Any], small: bool) -> list[Any] | str:
    """The messages of a body, or why the body breaks the spec's limits (`small`: the whole
    body is within a message's limit, so each message is)."""
    if kind != "batch":
        return [{"type": kind, **document}]
    batch = document.get("batch")
    if not isinstance(batch, list):
        return "batch: a list of messages"
    shared = {k: document[k] for k in ("sentAt", "context", "integrations") if k in document}
    messages = []
    for i, message in enumerate(batch):
        if not small and len(json.dumps(message, separators=(",", ":"))) > MAX_MESSAGE_BYTES:
            return f"batch[{i}]: larger than {MAX_MESSAGE_BYTES // 1024} KB"
        messages.append({**shared, **message} if isinstance(message, dict) else message)
    return messages


async def _body(request: Request, limit: int) -> bytes:
    encoding = request.headers.get("content-encoding", "").lower()
    raw = await bounded_body(request, limit)
    if encoding != "gzip":
        return raw
    try:
        unpacked = zlib.decompressobj(16 + zlib.MAX_WBITS)
        body = unpacked.decompress(raw, limit + 1)
    except zlib.error as err:
        raise ValueError(f"not gzip ({err})") from None
    if len(body) > limit or unpacked.unconsumed_tail:
        raise BodyTooLarge(f"more than {limit} bytes once unpacked")
    return body


def _basic_user(header: str) -> str:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return ""
    try:
        return base64.b64decode(value.strip()).decode("utf-8").split(":", 1)[0]
    except (ValueError, UnicodeDecodeError):
        return ""


def _settings(source: SegmentSource, request: Request) -> Response:
    write_key = request.path_params["write_key"]
    found = source.site_of(write_key)
    if found is None or found[1]:  # the server key is never a browser's
        return _refused(404, "unknown write key", {})
    public = urlsplit(source.settings.server.public_url)
    host = public.netloc or request.headers.get("host", "")
    scheme = public.scheme or request.url.scheme
    return JSONResponse({
        "integrations": {"Segment.io": {"apiKey": write_key, "apiHost": f"{host}/v1",
                                        "protocol": scheme, "unbundledIntegrations": [],
                                        "addBundledMetadata": False}},
        "plan": {"track": {"__default": {"enabled": True}},
                 "identify": {"__default": {"enabled": True}}},
        "edgeFunction": {}, "analyticsNextEnabled": True, "middlewareSettings": {},
        "enabledMiddleware": {}, "metrics": {"sampleRate": 0}, "legacyVideoPluginsEnabled": False,
        "remotePlugins": []}, headers=_cors(source, request.headers.get("origin")))


def _cors(source: SegmentSource, origin: str | None) -> dict[str, str]:
    if origin is None or not any(origin in s.origins for s in source.settings.sites):
        return {}
    return {"access-control-allow-origin": origin, "vary": "Origin"}


def _refused(status: int, reason: str, headers: Mapping[str, str]) -> Response:
    return JSONResponse({"success": False, "error": reason}, status, headers=dict(headers))


def _same(given: str, key: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), key.encode())

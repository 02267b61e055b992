"""gRPC-Web for `Ingest.Send`, on the HTTP listener, for browsers and edge workers.

How this works: a browser cannot speak HTTP/2 gRPC, so it POSTs one length-prefixed frame
(1 flag byte, 4 bytes big-endian length, the serialized Batch) with content type
`application/grpc-web+proto`. The answer is HTTP 200 whose body is the Ack in a data frame
followed by a trailer frame (flag 0x80) holding `grpc-status` and `grpc-message`; a refused
batch gets a trailers-only answer (the status in the headers, no body), as the gRPC-Web
protocol allows. The batch goes to the same `Ingestor` as native gRPC, so both transports
check, deduplicate and acknowledge identically.

CORS: a preflight is answered for origins some site lists; the request itself must come from
an origin the batch's own site lists, or from this server's own origin (its demo shop and
pages). A request with no Origin is a server or an app, which the site key and signed
identities govern as on native gRPC.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import quote

import grpc
from google.protobuf.message import DecodeError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.gen.pulsewire.v1 import batch_pb2
from collector.grpc_web import COMPRESSED_FLAG, TRAILER_FLAG, InvalidFrame, frame, split_frames
from server.config import Settings
from server.errors import InvalidBatch, PulsewireError, Unauthenticated
from server.ingest import Ingestor
from server.web.bodies import BodyTooLarge, BodyTooSlow, bounded_body

__all__ = ["SEND_PATH", "cors_headers", "frames", "grpc_web_routes", "origin_allowed",
           "own_origin"]

log = logging.getLogger("pulsewire.web")
SEND_PATH = "/pulsewire.v1.Ingest/Send"
CONTENT_TYPE = "application/grpc-web+proto"
_ACCEPTED_TYPES = ("application/grpc-web", "application/grpc-web+proto")
_EXPOSED = "grpc-status, grpc-message, grpc-status-details-bin"
_ALLOWED_HEADERS = "content-type, x-grpc-web, x-user-agent, grpc-timeout"
_FRAMING = 64  # a frame's header and the trailers a client may send


def frames(body: bytes) -> list[bytes]:
    """The messages of a run of gRPC-Web data frames; raises InvalidBatch on a bad framing."""
    try:
        found = split_frames(body)
    except InvalidFrame as err:
        raise InvalidBatch(str(err)) from None
    messages, at = [], 0
    for flags, message in found:
        if flags & COMPRESSED_FLAG:
            raise InvalidBatch(f"frame at byte {at}: compressed frames are not accepted")
        if flags & TRAILER_FLAG:
            raise InvalidBatch(f"frame at byte {at}: a request carries no trailers")
        messages.append(message)
        at += 5 + len(message)
    return messages


def decode_batch_frame(message: bytes) -> batch_pb2.Batch:
    batch = batch_pb2.Batch()
    try:
        batch.ParseFromString(message)
    except DecodeError as err:
        raise InvalidBatch(f"batch: not a pulsewire.v1.Batch ({err})") from None
    return batch


def own_origin(request: Request) -> str:
    """This server's origin as the request reached it."""
    return f"{request.url.scheme}://{request.headers.get('host', '')}"


def origin_allowed(settings: Settings, site_key: str, origin: str | None,
                   own: str = "", *, resumed: bool = False) -> bool:
    """Whether a batch of `site_key` may come from `origin`. A resumed batch whose stream is
    unknown here (`site_key` "") passes: the ingestor refuses it for that, which tells the
    client to send it in full, where the origin is checked."""
    if origin is None or origin == own or (resumed and not site_key):
        return True
    site = settings.site(site_key)
    return site is not None and origin in site.origins


def cors_headers(settings: Settings, origin: str | None) -> dict[str, str]:
    """CORS headers for an origin that some site lists (none for any other)."""
    if origin is None or not any(origin in s.origins for s in settings.sites):
        return {}
    return {"access-control-allow-origin": origin, "access-control-expose-headers": _EXPOSED,
            "vary": "Origin"}


def _status_headers(code: grpc.StatusCode, message: str) -> dict[str, str]:
    return {"grpc-status": str(code.value[0]), "grpc-message": quote(message, safe=" ")}


def _trailers(code: grpc.StatusCode, message: str) -> bytes:
    lines = "".join(f"{k}: {v}\r\n" for k, v in _status_headers(code, message).items())
    return frame(lines.encode(), TRAILER_FLAG)


StatusOf = Callable[[Exception], grpc.StatusCode]  # the gRPC error table (server/rpc/status.py)


class _Send:
    def __init__(self, settings: Settings, ingestor: Ingestor, status_of: StatusOf) -> None:
        self._settings = settings
        self._ingestor = ingestor
        self._status_of = status_of

    async def handle(self, request: Request) -> Response:
        origin = request.headers.get("origin")
        cors = cors_headers(self._settings, origin)
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type not in _ACCEPTED_TYPES:
            return Response(f"content type must be {CONTENT_TYPE}", 415, headers=cors)
        try:
            body = await bounded_body(request, self._settings.ingest.max_batch_bytes + _FRAMING)
        except BodyTooLarge as err:
            return self._refused(grpc.StatusCode.RESOURCE_EXHAUSTED, str(err), cors)
        except BodyTooSlow as err:
            return self._refused(grpc.StatusCode.DEADLINE_EXCEEDED, str(err), cors)
        peer = request.client.host if request.client else ""
        try:
            ack = await self._accept(body, origin, own_origin(request), peer)
        except PulsewireError as err:
            return self._refused(self._status_of(err), str(err), cors)
        except Exception:
            log.exception("gRPC-Web ingest failed")
            return self._refused(grpc.StatusCode.INTERNAL, "internal error; retry the batch",
                                 cors)
        body = frame(ack.SerializeToString()) + _trailers(grpc.StatusCode.OK, "")
        return Response(body, 200, media_type=CONTENT_TYPE, headers=cors)

    async def _accept(self, body: bytes, origin: str | None, own: str,
                      peer: str) -> batch_pb2.Ack:
        messages = frames(body)
        if len(messages) != 1:
            raise InvalidBatch(f"body: a unary call carries 1 message, not {len(messages)}")
        batch = decode_batch_frame(messages[0])
        if not origin_allowed(self._settings, self._ingestor.site_key_of(batch), origin, own,
                              resumed=bool(batch.resume)):
            raise Unauthenticated(f"origin {origin} is not one of the site's origins")
        return await self._ingestor.accept(batch, peer)

    @staticmethod
    def _refused(code: grpc.StatusCode, message: str, cors: dict[str, str]) -> Response:
        return Response(b"", 200, media_type=CONTENT_TYPE,
                        headers={**cors, **_status_headers(code, message)})


def _preflight(settings: Settings) -> Route:
    async def answer(request: Request) -> Response:
        cors = cors_headers(settings, request.headers.get("origin"))
        if not cors:
            return Response(status_code=403)
        return Response(status_code=204, headers={
            **cors, "access-control-allow-methods": "POST",
            "access-control-allow-headers": _ALLOWED_HEADERS, "access-control-max-age": "600"})
    return Route(SEND_PATH, answer, methods=["OPTIONS"])


def grpc_web_routes(settings: Settings, ingestor: Ingestor, status_of: StatusOf) -> list[Route]:
    """Ingest.Send over gRPC-Web; `status_of` maps a refusal to its gRPC status, as for
    native gRPC."""
    return [Route(SEND_PATH, _Send(settings, ingestor, status_of).handle, methods=["POST"]),
            _preflight(settings)]

"""What an email's links land on: the open pixel, click redirects, unsubscribe, plus /metrics.

Every link carries a signed token (server/mail/tokens.py); a token that does not verify gets a
404 and changes nothing. Opens, clicks and unsubscribes go into the user's shard as events
(email_open, email_click, unsubscribe), so sequences can react to them. The first open and the
first click of a message are deduplicated like a retried batch (device "m:<message>"), so a
mail client fetching the pixel ten times counts once. A click redirects only to the URL inside
its own signed token: no open redirect.

Unsubscribe follows RFC 8058: a POST to the List-Unsubscribe URL (body
"List-Unsubscribe=One-Click") unsubscribes at once, without a page; a GET shows a page whose
button POSTs, because link scanners follow GETs and must not unsubscribe anyone.
"""

from __future__ import annotations

import hmac
import html
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from server.clock import Clock
from server.engine import Event
from server.errors import ShardClosed
from server.ingest.rate import FailureLimit
from server.mail.tokens import (
    KIND_CLICK,
    KIND_OPEN,
    KIND_UNSUBSCRIBE,
    InvalidToken,
    LinkSigner,
)
from server.metrics import Metrics
from server.modes import ApplyEvents
from server.storage.router import feedback_device, shard_of
from server.storage.shard import Shards

__all__ = ["Tracking", "build_web_app"]

PIXEL_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00"
             b"\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
_NO_STORE = {"Cache-Control": "no-store, private", "X-Robots-Tag": "noindex"}
_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;
padding:0 1rem;color:#222}}button{{font:inherit;padding:.5rem 1rem}}</style></head>
<body>{body}</body></html>"""


@dataclass
class Tracking:
    signer: LinkSigner
    shards: Shards
    clock: Clock
    metrics: Metrics
    apply_events: ApplyEvents  # the mode's
    operator_token: str = field(default="", repr=False)  # also opens /metrics to other hosts
    # guessing the token at /metrics costs as much time as at the Admin service
    refused_tokens: FailureLimit = field(default_factory=FailureLimit)

    async def feedback(self, kind: str, payload: dict[str, str], extra: dict[str, str],
                       dedup_seq: int) -> None:
        user, message = payload["user"], payload["message"]
        props: dict[str, str | int] = {"message": message, **extra}
        try:
            sent_by = await self.shards[shard_of(user, len(self.shards))].message_step(message)
        except ShardClosed:  # held by another node, whose owner adds sequence and step
            sent_by = None
        if sent_by is not None:
            props.update(sequence=sent_by[0], step=sent_by[1])
        event = Event(kind, self.clock.now_ms(), props)
        await self.apply_events(user, [event], feedback_device(message) if dedup_seq else "",
                                dedup_seq)


def _verify(tracking: Tracking, kind: str, token: str) -> dict[str, str] | None:
    try:
        return tracking.signer.verify(kind, token)
    except InvalidToken:
        return None


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status,
                        headers=_NO_STORE)


def _endpoints(tracking: Tracking) -> list[Route]:
    async def pixel(request: Request) -> Response:
        payload = _verify(tracking, KIND_OPEN, request.path_params["token"])
        if payload is not None:
            await tracking.feedback("email_open", payload, {}, dedup_seq=1)
        return Response(PIXEL_GIF, media_type="image/gif", headers=_NO_STORE)

    async def click(request: Request) -> Response:
        payload = _verify(tracking, KIND_CLICK, request.path_params["token"])
        if payload is None or not payload.get("url", "").startswith(("https://", "http://")):
            return _page("Link not found", "<p>This link is not valid.</p>", 404)
        await tracking.feedback("email_click", payload, {"url": payload["url"]}, dedup_seq=2)
        return RedirectResponse(payload["url"], 302, headers=_NO_STORE)

    async def unsubscribe(request: Request) -> Response:
        token = request.path_params["token"]
        payload = _verify(tracking, KIND_UNSUBSCRIBE, token)
        if payload is None:
            return _page("Link not found", "<p>This unsubscribe link is not valid.</p>", 404)
        if request.method == "POST":
            await tracking.feedback("unsubscribe", payload, {}, dedup_seq=0)
            return _page("Unsubscribed", "<h1>You are unsubscribed</h1><p>We will not email "
                         f"<b>{html.escape(payload.get('email', ''))}</b> again.</p>")
        return _page("Unsubscribe", f"""<h1>Unsubscribe</h1>
<p>Stop all email to <b>{html.escape(payload.get('email', ''))}</b>?</p>
<form method="post" action="/u/{html.escape(token)}"><button type="submit">Unsubscribe</button>
</form>""")

    async def metrics(request: Request) -> Response:
        peer, now = request.client.host if request.client else "", tracking.clock.now_ms()
        if not tracking.refused_tokens.allowed(peer, now):
            return Response("metrics: too many refused tokens from this address: wait a "
                            "minute\n", 429, media_type="text/plain")
        if not _may_read_metrics(request, tracking.operator_token):
            tracking.refused_tokens.refused(peer, now)
            return Response("metrics: from this host, or with the operator token\n", 403,
                            media_type="text/plain")
        return Response(tracking.metrics.render(),
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    async def healthz(_request: Request) -> Response:
        return Response("ok\n", media_type="text/plain")

    return [
        Route("/o/{token}.gif", pixel),
        Route("/c/{token}", click),
        Route("/u/{token}", unsubscribe, methods=["GET", "POST"]),
        Route("/metrics", metrics),
        Route("/healthz", healthz),
    ]


def _may_read_metrics(request: Request, token: str) -> bool:
    """Loopback always (a local agent or scraper); another host with `Authorization: Bearer
    <operator token>` (Prometheus' `authorization` scrape setting)."""
    if request.client is not None and request.client.host in ("127.0.0.1", "::1"):
        return True
    given = request.headers.get("authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def build_web_app(tracking: Tracking,
                  extra_routes: Callable[[], list[BaseRoute]] = lambda: []) -> Starlette:
    return Starlette(routes=[*_endpoints(tracking), *extra_routes()])

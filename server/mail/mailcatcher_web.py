"""The mail catcher's web pages: a list, one message, its raw bytes, and a JSON API.

    GET /                    every message, newest first: time, from, to, subject
    GET /m/{id}              one message: its HTML in a sandboxed iframe, its text, its headers
    GET /m/{id}.eml          the message exactly as received
    GET /api/messages        JSON, oldest first: [{id, from, to, subject, received_ms, headers,
                             text, html, envelope}]

Pages are built with `html.escape` around everything that came from a message. The HTML part
is shown through `srcdoc` in an iframe with `sandbox` (no scripts, no access to this page), and
the page's Content-Security-Policy forbids scripts too, for the iframe as well.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from server.mail.mailcatcher import CaughtMessage, MailCatcher

__all__ = ["mailcatcher_app"]

_HEADERS = {"Content-Security-Policy": "script-src 'none'; object-src 'none'",
            "X-Content-Type-Options": "nosniff"}
_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:10px 20px}header a{color:#fff;text-decoration:none}
main{padding:16px 20px}table{border-collapse:collapse;width:100%;background:#fff}
td,th{padding:6px 10px;border-bottom:1px solid #d0d7de;text-align:left;vertical-align:top}
tr:hover td{background:#f3f4f6}iframe{width:100%;height:640px;border:1px solid #d0d7de;
background:#fff}pre{background:#fff;border:1px solid #d0d7de;padding:10px;white-space:pre-wrap;
word-break:break-word}h2{font-size:15px;margin:20px 0 6px}.muted{color:#656d76}
"""


def mailcatcher_app(catcher: MailCatcher) -> Starlette:
    async def index(_request: Request) -> Response:
        rows = "".join(_row(m) for m in reversed(catcher.messages))
        body = (f"<table><tr><th>received</th><th>from</th><th>to</th><th>subject</th></tr>"
                f"{rows}</table>" if rows else "<p class=muted>No messages yet.</p>")
        return _page(f"{len(catcher.messages)} message(s)", body)

    async def message(request: Request) -> Response:
        found = catcher.get(request.path_params["id"])
        return _page(found.subject or "(no subject)", _detail(found)) if found else _missing()

    async def raw(request: Request) -> Response:
        found = catcher.get(request.path_params["id"])
        if found is None:
            return _missing()
        return Response(found.raw, media_type="message/rfc822", headers=_HEADERS)

    async def api(_request: Request) -> Response:
        return JSONResponse([m.as_json() for m in catcher.messages])

    return Starlette(routes=[
        Route("/", index),
        Route("/m/{id}.eml", raw),
        Route("/m/{id}", message),
        Route("/api/messages", api),
    ])


def _row(m: CaughtMessage) -> str:
    link = f"/m/{escape(m.id)}"
    return (f"<tr><td>{_when(m.received_ms)}</td><td>{escape(m.sender)}</td>"
            f"<td>{escape(m.to)}</td><td><a href=\"{link}\">{escape(m.subject or '(none)')}</a>"
            f"</td></tr>")


def _detail(m: CaughtMessage) -> str:
    headers = "\n".join(f"{name}: {value}" for name, value in m.headers)
    # Links open in a new tab: a sandboxed frame may open popups but not navigate this page.
    framed = '<base target="_blank">' + m.html
    parts = [f"<p class=muted>{_when(m.received_ms)} · from {escape(m.sender)} to "
             f"{escape(m.to)} · <a href=\"/m/{escape(m.id)}.eml\">raw</a></p>"]
    if m.html:
        parts.append("<h2>HTML</h2><iframe sandbox=\"allow-popups "
                     f"allow-popups-to-escape-sandbox\" srcdoc=\"{escape(framed)}\"></iframe>")
    if m.text:
        parts.append(f"<h2>Text</h2><pre>{escape(m.text)}</pre>")
    parts.append(f"<h2>Headers</h2><pre>{escape(headers)}</pre>")
    return "".join(parts)


def _when(received_ms: int) -> str:
    return datetime.fromtimestamp(received_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)} · mailcatcher"
        f"</title><style>{_STYLE}</style></head><body><header><a href=\"/\">pulsewire "
        f"mailcatcher</a></header><main><h1>{escape(title)}</h1>{body}</main></body></html>",
        headers=_HEADERS)


def _missing() -> Response:
    return HTMLResponse("<p>No such message.</p>", status_code=404, headers=_HEADERS)

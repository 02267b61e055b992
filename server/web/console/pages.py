"""The console's pages: server-rendered Jinja2 (autoescaped), one handler per page, every one
behind a session (auth.py) and every form behind a CSRF token.

Responses carry a strict Content-Security-Policy (scripts and styles from /console/static/
only, no inline code, frames from the console itself), and are never cached. A request with
no valid session gets the login page (a GET is redirected there; anything else is 401).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from server.errors import InvalidSequence, InvalidTemplates, PulsewireError
from server.ingest.rate import FailureLimit
from server.mail.catalog import Catalog
from server.web.bodies import BodyTooLarge, BodyTooSlow, bounded_body
from server.web.console import charts
from server.web.console.auth import COOKIE, LOGIN_COOKIE, Session, Sessions, verify_password
from server.web.console.editing import backtest, check, file_name_ok, save, sequence_files
from server.web.console.figures import PERIODS, ConsoleSources, overview, sequence_figures
from server.web.console.people import user_page
from server.web.console.previews import frame_headers, preview_all

__all__ = ["console_routes"]

HERE = Path(__file__).resolve().parent
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "frame-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
            "X-Frame-Options": "DENY"}
Handler = Callable[[Request, Session], Awaitable[Response]]
FORM_BYTES = 512 * 1024  # a pasted sequence fits; anything larger is refused


class Console:
    def __init__(self, sources: ConsoleSources) -> None:
        self.sources = sources
        settings = sources.settings.console
        self.sessions = Sessions(sources.secret, settings.session_hours, sources.now_ms)
        self.refused = FailureLimit()  # login attempts per address, as the admin token's
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                      autoescape=True, undefined=jinja2.StrictUndefined)
        self.env.globals.update(charts=charts, Markup=Markup, json=json)
        self.env.filters.update(when=_when, arm_interval=_arm_interval)
        self.secure = sources.settings.server.public_url.startswith("https://")

    def page(self, request: Request, session: Session | None, template: str,
             status: int = 200, **values: Any) -> HTMLResponse:
        csrf = self.sessions.csrf(session.nonce) if session else ""
        body = self.env.get_template(template).render(
            request=request, session=session, csrf=csrf, periods=list(PERIODS), **values)
        return HTMLResponse(body, status, headers=_HEADERS)

    def guard(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """`handler` for a logged-in session only, and a POST only with its CSRF token."""
        async def guarded(request: Request) -> Response:
            session = self.sessions.read(request.cookies.get(COOKIE))
            if session is None:
                if request.method == "GET":
                    return RedirectResponse("/console/login", 303, headers=_HEADERS)
                return Response("log in first\n", 401, headers=_HEADERS)
            if request.method == "POST":
                try:
                    fields = await _form(request)
                except (BodyTooLarge, BodyTooSlow) as err:
                    return Response(f"{err}\n", 413 if isinstance(err, BodyTooLarge) else 408,
                                    headers=_HEADERS)
                if not self.sessions.csrf_ok(session.nonce, fields.get("csrf")):
                    return Response("this form is stale or not from the console: reload the "
                                    "page\n", 403, headers=_HEADERS)
            return await handler(request, session)
        return guarded


def console_routes(console: Console) -> list[BaseRoute]:
    c = console
    return [Mount("/console", routes=[
        Route("/login", _open(lambda r: _login_page(c, r)), methods=["GET"]),
        Route("/login", _open(lambda r: _login(c, r)), methods=["POST"]),
        Route("/logout", c.guard(lambda r, s: _logout(c)), methods=["POST"]),
        Route("/", c.guard(lambda r, s: _overview(c, r, s))),
        Route("/sequences/{sequence}", c.guard(lambda r, s: _sequence(c, r, s))),
        Route("/previews", c.guard(lambda r, s: _previews(c, r, s))),
        Route("/previews/{name}.html", c.guard(lambda r, s: _preview_frame(c, r))),
        Route("/users", c.guard(lambda r, s: _user(c, r, s))),
        Route("/users/act", c.guard(lambda r, s: _user_act(c, r, s)), methods=["POST"]),
        Route("/live", c.guard(lambda r, s: _live(c, r, s))),
        Route("/live/stream", c.guard(lambda r, s: _live_stream(c, r))),
        Route("/edit", c.guard(lambda r, s: _edit(c, r, s)), methods=["GET", "POST"]),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="console-static"),
    ])]


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form of a POST (read once, bounded, kept on the request)."""
    if not hasattr(request.state, "form"):
        body = await bounded_body(request, FORM_BYTES)
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
        request.state.form = dict(pairs[:64])
    form: dict[str, str] = request.state.form
    return form


def _open(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request],
                                                                         Awaitable[Response]]:
    """A page anyone may ask for (the login), as the async endpoint Starlette wants."""
    async def endpoint(request: Request) -> Response:
        return await handler(request)
    return endpoint


# ---- login ----------------------------------------------------------------------------------


async def _login_page(c: Console, request: Request, problem: str = "",
                      status: int = 200) -> Response:
    nonce = request.cookies.get(LOGIN_COOKIE) or c.sessions.issue("")[1].nonce
    response = c.page(request, None, "login.html", status, problem=problem,
                      login_csrf=c.sessions.csrf(nonce))
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=3600, path="/console", httponly=True,
                        samesite="strict", secure=c.secure)
    return response


async def _login(c: Console, request: Request) -> Response:
    peer, now = request.client.host if request.client else "", c.sources.now_ms()
    if not c.refused.allowed(peer, now):
        return await _login_page(c, request, "Too many failed logins from this address: wait a "
                                 "minute.", 429)
    fields = await _form(request)
    if not c.sessions.csrf_ok(request.cookies.get(LOGIN_COOKIE), fields.get("csrf")):
        return await _login_page(c, request, "The form was stale: try again.", 403)
    user = _who(c, str(fields.get("token", "")), str(fields.get("username", "")),
                str(fields.get("password", "")))
    if user is None:
        c.refused.refused(peer, now)
        return await _login_page(c, request, "Wrong token, name or password.", 401)
    cookie, _ = c.sessions.issue(user)
    response = RedirectResponse("/console/", 303, headers=_HEADERS)
    response.set_cookie(COOKIE, cookie, path="/console", httponly=True, samesite="strict",
                        secure=c.secure, max_age=int(c.sources.settings.console.session_hours
                                                     * 3600))
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response


def _who(c: Console, token: str, username: str, password: str) -> str | None:
    operator = c.sources.settings.server.operator_token
    if token:
        return "operator" if operator and hmac.compare_digest(token.encode(),
                                                              operator.encode()) else None
    accounts = dict(c.sources.settings.console.accounts)
    if username and verify_password(password, accounts.get(username)):
        return username
    return None


async def _logout(c: Console) -> Response:
    response = RedirectResponse("/console/login", 303, headers=_HEADERS)
    response.delete_cookie(COOKIE, path="/console")
    return response


# ---- pages ----------------------------------------------------------------------------------


def _period(request: Request) -> str:
    period = request.query_params.get("period", "all")
    return period if period in PERIODS else "all"


async def _overview(c: Console, request: Request, session: Session) -> Response:
    period = _period(request)
    figures = await overview(c.sources, period)
    return c.page(request, session, "overview.html", period=period, **figures)


async def _sequence(c: Console, request: Request, session: Session) -> Response:
    period, name = _period(request), request.path_params["sequence"]
    figures = await sequence_figures(c.sources, name, period)
    if figures is None:
        return c.page(request, session, "missing.html", 404, what=f"sequence {name}")
    return c.page(request, session, "sequence.html", period=period, **figures)


def _previews_of(c: Console, only: str | None = None) -> list[Any]:
    settings = c.sources.settings
    catalog_path = Path(settings.server.data_dir) / "catalog.sqlite"
    catalog = Catalog.open(catalog_path) if catalog_path.exists() else None
    return preview_all(c.sources.templates(), Path(settings.templates.dir), catalog,
                       c.sources.rules(), settings.server.public_url, only)


async def _previews(c: Console, request: Request, session: Session) -> Response:
    previews = await asyncio.to_thread(_previews_of, c)
    return c.page(request, session, "previews.html", previews=previews)


async def _preview_frame(c: Console, request: Request) -> Response:
    name = request.path_params["name"]
    previews = await asyncio.to_thread(_previews_of, c, name)
    found = next((p for p in previews if p.name == name and p.email is not None), None)
    if found is None or found.email is None:
        return Response("no such preview\n", 404, headers=_HEADERS)
    return HTMLResponse(found.email.html, headers=frame_headers())


async def _user(c: Console, request: Request, session: Session) -> Response:
    who = request.query_params.get("who", "").strip()
    found = await user_page(c.sources, who) if who else None
    return c.page(request, session, "user.html", who=who, user=found,
                  done=request.query_params.get("done", ""))


async def _user_act(c: Console, request: Request, session: Session) -> Response:
    fields = await _form(request)
    action, who = str(fields.get("action", "")), str(fields.get("who", ""))
    email = str(fields.get("email", ""))
    actions = c.sources.actions
    if action in ("suppress", "unsuppress") and email:
        await actions.suppress(email, action == "suppress")
    elif action == "erase" and who:
        await actions.erase(who)
    else:
        return Response("unknown action\n", 400, headers=_HEADERS)
    target = "" if action == "erase" else who
    return RedirectResponse(f"/console/users?who={_q(target)}&done={action}", 303,
                            headers=_HEADERS)


async def _live(c: Console, request: Request, session: Session) -> Response:
    return c.page(request, session, "live.html", entries=c.sources.live.recent(50))


async def _live_stream(c: Console, request: Request) -> Response:
    feed = c.sources.live

    async def events() -> AsyncIterator[str]:
        queue = feed.subscribe()
        try:
            yield "retry: 2000\n\n"
            while True:
                try:
                    entry = await asyncio.wait_for(queue.get(), 15)
                except TimeoutError:
                    yield ": still here\n\n"
                    continue
                yield f"id: {entry.number}\ndata: {json.dumps(entry.as_json())}\n\n"
        finally:
            feed.unsubscribe(queue)

    headers = {**_HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


async def _edit(c: Console, request: Request, session: Session) -> Response:
    settings = c.sources.settings
    folder = Path(settings.sequences.dir)
    files = [str(p.relative_to(folder)) for p in sequence_files(folder)]
    name = request.query_params.get("file", "")
    values: dict[str, Any] = {"files": files, "name": name, "text": "", "problems": [],
                              "outcome": "", "backtest": None,
                              "allow_edits": settings.console.allow_edits,
                              "history": settings.console.history_file}
    if request.method == "GET":
        if name in files:
            values["text"] = (folder / name).read_text(encoding="utf-8")
        return c.page(request, session, "edit.html", **values)
    fields = await _form(request)
    action = str(fields.get("action", ""))
    name, text = str(fields.get("name", "")), str(fields.get("text", ""))
    values.update(name=name, text=text)
    if action == "reload":
        try:
            running = c.sources.reload()
            values["outcome"] = f"reloaded: {len(running)} sequences running"
        except (InvalidSequence, InvalidTemplates) as err:
            values["problems"] = [str(p) for p in err.problems]
            values["outcome"] = "refused: the running set stays in force"
        return c.page(request, session, "edit.html", **values)
    checked = await asyncio.to_thread(check, folder, Path(name).name, text)
    values["problems"] = checked.problems
    if checked.problems:
        values["outcome"] = "invalid"
    elif action == "backtest" and settings.console.history_file:
        assert checked.sequence_set is not None
        values["backtest"] = await asyncio.to_thread(backtest, checked.sequence_set,
                                                     Path(settings.console.history_file))
        values["outcome"] = "valid; backtested"
    elif action == "save" and settings.console.allow_edits and file_name_ok(Path(name).name):
        try:
            path = await asyncio.to_thread(save, folder, Path(name).name, text)
            values["outcome"] = f"saved {path.name} (the previous text is {path.name}.previous);"
            values["outcome"] += " reload to run it"
        except PulsewireError as err:
            values["outcome"] = str(err)
    else:
        values["outcome"] = "valid"
    return c.page(request, session, "edit.html", **values)


def _when(ms: int | None) -> str:
    if not ms:
        return "–"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _arm_interval(arm: dict[str, Any]) -> charts.Interval:
    low, high = arm["ci95"] or (None, None)
    return charts.Interval(arm["name"], arm["rate"], low, high)


def _q(text: str) -> str:
    return quote(text, safe="")

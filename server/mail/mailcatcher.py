"""A mail catcher for development and tests: an SMTP server that keeps what it receives.

Every message accepted over SMTP is written to `store_dir` as NNNNNN.eml (the bytes exactly as
received) and kept in memory; on start, .eml files already in `store_dir` are read back, so a
restart forgets nothing. A small web app (mailcatcher_web.py) lists and shows them, and
`/api/messages` gives them as JSON. The SMTP server and uvicorn both run on the caller's event
loop; `async with MailCatcher(...)` starts both on the ports given (0: any free port) and
stops both on exit, closing every connection.

    pulsewire mailcatcher --smtp 127.0.0.1:1025 --http 127.0.0.1:8025 --store ./data/mail
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session

from server.mail.smtp_listener import SmtpListener

__all__ = [
    "CaughtMessage",
    "MailCatcher",
    "add_mailcatcher_arguments",
    "run_mailcatcher",
    "run_mailcatcher_command",
]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class CaughtMessage:
    """One received message: its envelope, its raw bytes, and the parts a person reads."""

    id: str
    received_ms: int
    envelope_from: str
    envelope_to: tuple[str, ...]
    raw: bytes
    sender: str = ""  # the From header
    to: str = ""  # the To header
    subject: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    text: str = ""
    html: str = ""
    parsed: EmailMessage | None = field(default=None, repr=False, compare=False)

    @classmethod
    def read(cls, ident: str, received_ms: int, envelope_from: str,
             envelope_to: tuple[str, ...], raw: bytes) -> CaughtMessage:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(msg, EmailMessage)
        return cls(
            ident, received_ms, envelope_from, envelope_to, raw,
            sender=str(msg.get("From", "")), to=str(msg.get("To", "")),
            subject=str(msg.get("Subject", "")),
            headers=tuple((k, str(v)) for k, v in msg.items()),
            text=_part(msg, "plain"), html=_part(msg, "html"), parsed=msg,
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "from": self.sender, "to": self.to, "subject": self.subject,
            "received_ms": self.received_ms, "headers": [list(h) for h in self.headers],
            "text": self.text, "html": self.html,
            "envelope": {"from": self.envelope_from, "to": list(self.envelope_to)},
        }


def _part(msg: EmailMessage, subtype: str) -> str:
    try:
        body = msg.get_body(preferencelist=(subtype,))
        content = body.get_content() if body is not None else ""
    except (LookupError, ValueError, AttributeError):
        return ""  # a malformed message still shows its headers
    return content if isinstance(content, str) else ""


class MailCatcher:
    """`async with MailCatcher(store_dir, smtp_port=0, http_port=0) as catcher:` ..."""

    def __init__(self, store_dir: Path | str, *, smtp_host: str = "127.0.0.1",
                 smtp_port: int = 0, http_host: str = "127.0.0.1", http_port: int = 0,
                 clock_ms: Callable[[], int] = wall_clock_ms) -> None:
        self._store = Path(store_dir)
        self._clock_ms = clock_ms
        self._messages: list[CaughtMessage] = []
        self._arrived = asyncio.Condition()
        self._smtp = SmtpListener(self, smtp_host, smtp_port, hostname="pulsewire-mailcatcher")
        self._http_address = (http_host, http_port)
        self._http: uvicorn.Server | None = None
        self._http_socket: socket.socket | None = None
        self._http_task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> MailCatcher:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    @property
    def smtp_port(self) -> int:
        return self._smtp.port

    @property
    def http_port(self) -> int:
        if self._http_socket is None:
            raise RuntimeError("the mail catcher is not started")
        port: int = self._http_socket.getsockname()[1]
        return port

    @property
    def messages(self) -> list[CaughtMessage]:
        """Every message caught, oldest first."""
        return list(self._messages)

    @property
    def connections(self) -> int:
        """SMTP connections accepted since start."""
        return self._smtp.connections

    def get(self, ident: str) -> CaughtMessage | None:
        return next((m for m in self._messages if m.id == ident), None)

    async def start(self) -> None:
        from server.mail.mailcatcher_web import mailcatcher_app

        self._store.mkdir(parents=True, exist_ok=True)
        self._messages = _read_store(self._store)
        await self._smtp.start()
        try:
            config = uvicorn.Config(mailcatcher_app(self), lifespan="off", log_config=None,
                                    log_level="warning", access_log=False)
            config.load()
            self._http_socket = socket.create_server(self._http_address)
            self._http = uvicorn.Server(config)
            self._http.lifespan = config.lifespan_class(config)
            await self._http.startup(sockets=[self._http_socket])
            self._http_task = asyncio.create_task(self._http.main_loop())
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        await self._smtp.close()
        if self._http is not None:
            self._http.should_exit = True
            if self._http_task is not None:
                await self._http_task
            await self._http.shutdown(sockets=[self._http_socket] if self._http_socket else [])
            self._http = self._http_task = None
        if self._http_socket is not None:
            self._http_socket.close()

    async def wait_for(self, count: int, timeout_s: float = 5.0) -> list[CaughtMessage]:
        """Waits until at least `count` messages were caught; TimeoutError after `timeout_s`."""
        async with self._arrived:
            try:
                await asyncio.wait_for(
                    self._arrived.wait_for(lambda: len(self._messages) >= count), timeout_s)
            except TimeoutError:
                raise TimeoutError(f"caught {len(self._messages)} of {count} messages "
                                   f"in {timeout_s}s") from None
        return list(self._messages)

    async def drop_connections(self) -> None:
        """Hangs up on every SMTP client (tests of clients that must reconnect)."""
        await self._smtp.drop_connections()

    # aiosmtpd handler hook: called for each message received.
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        number = int(self._messages[-1].id) + 1 if self._messages else 1
        ident = f"{number:06d}"
        (self._store / f"{ident}.eml").write_bytes(raw)
        message = CaughtMessage.read(ident, self._clock_ms(), envelope.mail_from or "",
                                     tuple(envelope.rcpt_tos), raw)
        async with self._arrived:
            self._messages.append(message)
            self._arrived.notify_all()
        return f"250 OK: queued as {ident}"


def _read_store(store: Path) -> list[CaughtMessage]:
    found = sorted((p for p in store.glob("*.eml") if p.stem.isdigit()), key=lambda p: int(p.stem))
    return [CaughtMessage.read(f"{int(p.stem):06d}", p.stat().st_mtime_ns // 1_000_000, "", (),
                               p.read_bytes()) for p in found]


async def run_mailcatcher(smtp_host: str, smtp_port: int, http_host: str, http_port: int,
                          store_dir: Path | str) -> None:
    """Runs a mail catcher until cancelled (Ctrl-C)."""
    async with MailCatcher(store_dir, smtp_host=smtp_host, smtp_port=smtp_port,
                           http_host=http_host, http_port=http_port) as catcher:
        print(f"mailcatcher: SMTP on {smtp_host}:{catcher.smtp_port}, "
              f"web on http://{_url_host(http_host)}:{catcher.http_port}/, "
              f"storing in {store_dir} ({len(catcher.messages)} message(s) there)", flush=True)
        await asyncio.Event().wait()


def add_mailcatcher_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--smtp", type=_host_port, default=("127.0.0.1", 1025),
                        metavar="HOST:PORT", help="SMTP listen address (default 127.0.0.1:1025)")
    parser.add_argument("--http", type=_host_port, default=("127.0.0.1", 8025),
                        metavar="HOST:PORT", help="web listen address (default 127.0.0.1:8025)")
    parser.add_argument("--store", type=Path, default=Path("data/mail"), metavar="DIR",
                        help="where messages are kept as .eml files (default ./data/mail)")


def run_mailcatcher_command(args: argparse.Namespace) -> int:
    (smtp_host, smtp_port), (http_host, http_port) = args.smtp, args.http
    try:
        asyncio.run(run_mailcatcher(smtp_host, smtp_port, http_host, http_port, args.store))
    except KeyboardInterrupt:
        return 0
    except OSError as err:
        print(f"mailcatcher: {err}", flush=True)
        return 1
    return 0


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: write HOST:PORT, e.g. 127.0.0.1:1025")
    return host.strip("[]") or "127.0.0.1", int(port)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host

"""An aiosmtpd SMTP server on the running event loop, that knows its connections.

aiosmtpd's threaded `Controller` runs a loop of its own; here the `SMTP` protocol is served
with `loop.create_server` on the caller's loop instead, so a test or the server process runs
one loop. The listener counts the connections it accepted (tests check connection reuse with
it), can drop them all (tests check that clients survive a server hanging up), and on close
hangs up on every client and waits for each session task to end, so nothing is left pending.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from aiosmtpd.smtp import SMTP

__all__ = ["SmtpListener"]


class _Session(SMTP):
    """aiosmtpd's protocol, reporting when a connection starts and ends."""

    def __init__(self, listener: SmtpListener, handler: Any, **options: Any) -> None:
        super().__init__(handler, **options)
        self._listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._listener._opened(self, transport)

    def connection_lost(self, error: Exception | None) -> None:
        task = self._handler_coroutine
        super().connection_lost(error)
        self._listener._closed(self, task)


class SmtpListener:
    """Serves `handler` (an aiosmtpd handler object) over SMTP on host:port (0: any port)."""

    def __init__(self, handler: Any, host: str = "127.0.0.1", port: int = 0, *,
                 hostname: str = "pulsewire.local") -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._hostname = hostname
        self._server: asyncio.Server | None = None
        self._live: dict[_Session, asyncio.BaseTransport] = {}
        self._ending: set[asyncio.Task[None]] = set()
        self.connections = 0  # accepted since start

    async def __aenter__(self) -> SmtpListener:
        await self.start()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the SMTP listener is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Session(self, self._handler, hostname=self._hostname,
                             enable_SMTPUTF8=True, loop=loop),
            self._host, self._port,
        )

    async def drop_connections(self) -> None:
        """Hangs up on every client, as a server restarting or timing out idle clients does."""
        for transport in list(self._live.values()):
            transport.close()
        await self._wait_ended()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self.drop_connections()
            await self._server.wait_closed()
            self._server = None

    def _opened(self, session: _Session, transport: asyncio.BaseTransport) -> None:
        self.connections += 1
        self._live[session] = transport

    def _closed(self, session: _Session, task: asyncio.Task[None] | None) -> None:
        self._live.pop(session, None)
        if task is not None and not task.done():
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    async def _wait_ended(self) -> None:
        # Closing a transport reports connection_lost on a later loop turn; then the session's
        # task is cancelled and ends a turn or two after that.
        for _ in range(1000):  # bounded: each turn lets the loop run the callbacks above
            if not (self._live or self._ending):
                return
            await asyncio.gather(*self._ending, return_exceptions=True)
            await asyncio.sleep(0)

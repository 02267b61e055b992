"""Serving an ASGI app with uvicorn on the server's own event loop, from a socket we bind
ourselves (so port 0 works and the real port is known before the first request)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

__all__ = ["serve_http"]


def _bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


@asynccontextmanager
async def serve_http(app: Any, listen: str) -> AsyncIterator[int]:
    """Serve `app` on `listen` ("host:port", port 0 for any) while the block runs; yields the
    port. On exit, uvicorn stops accepting and finishes requests in flight."""
    sock = _bind(listen)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                            server_header=False)
    server = uvicorn.Server(config)
    # The server owns SIGINT/SIGTERM (it drains queues before exiting): uvicorn must not.
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()

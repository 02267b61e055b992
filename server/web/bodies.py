"""Request bodies read with bounds: a body past its size limit is refused as it arrives, never
held whole in memory first, and one that trickles in slower than READ_TIMEOUT_S allows is
dropped (a slow client must not hold a connection and its buffer for ever)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request

__all__ = ["READ_TIMEOUT_S", "BodyTooLarge", "BodyTooSlow", "bounded_body"]

READ_TIMEOUT_S = 10.0


class BodyTooLarge(ValueError):
    """A request body past its route's limit; the message says the limit (answer 413)."""


class BodyTooSlow(ValueError):
    """A request body that did not arrive within READ_TIMEOUT_S (answer 408)."""


async def bounded_body(request: Request, limit: int) -> bytes:
    """The body of `request`, at most `limit` bytes; raises BodyTooLarge past that (a declared
    Content-Length past it is refused before anything is read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body: {declared} bytes, at most {limit}")
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            async for part in request.stream():
                size += len(part)
                if size > limit:
                    raise BodyTooLarge(f"body: more than {limit} bytes, at most {limit}")
                parts.append(part)
    except TimeoutError:
        raise BodyTooSlow(f"body: not received within {READ_TIMEOUT_S:g} s") from None
    return b"".join(parts)

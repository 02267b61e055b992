"""Request bodies read with a bound: a body past its limit is refused as it arrives, never
held whole in memory first."""

from __future__ import annotations

from starlette.requests import Request

__all__ = ["BodyTooLarge", "bounded_body"]


class BodyTooLarge(ValueError):
    """A request body past its route's limit; the message says the limit."""


async def bounded_body(request: Request, limit: int) -> bytes:
    """The body of `request`, at most `limit` bytes; raises BodyTooLarge past that (a declared
    Content-Length past it is refused before anything is read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body: {declared} bytes, at most {limit}")
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise BodyTooLarge(f"body: more than {limit} bytes, at most {limit}")
        parts.append(part)
    return b"".join(parts)

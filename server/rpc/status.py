"""Errors to gRPC status codes, in one table rather than in each handler."""

from __future__ import annotations

import grpc

from server.errors import (
    InvalidBatch,
    InvalidSequence,
    PulsewireError,
    ShardClosed,
    Unavailable,
)
from server.mail.render import InvalidTemplates
from server.rpc.resume import ResumeUnknown

__all__ = ["RateLimited", "Unauthenticated", "status_of"]


class Unauthenticated(PulsewireError):
    """Wrong site key, or a missing or wrong operator token."""


class RateLimited(PulsewireError):
    """Over the site's event rate or a batch limit."""


_TABLE: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (RateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (InvalidBatch, grpc.StatusCode.INVALID_ARGUMENT),
    (ResumeUnknown, grpc.StatusCode.FAILED_PRECONDITION),
    (InvalidSequence, grpc.StatusCode.FAILED_PRECONDITION),
    (InvalidTemplates, grpc.StatusCode.FAILED_PRECONDITION),
    (ShardClosed, grpc.StatusCode.UNAVAILABLE),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
)


def status_of(error: Exception) -> grpc.StatusCode:
    for kind, code in _TABLE:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL

"""Errors to gRPC status codes, in one table rather than in each handler."""

from __future__ import annotations

import grpc

from server.errors import (
    InvalidBatch,
    InvalidSequence,
    InvalidTemplates,
    RateLimited,
    ResumeUnknown,
    ShardClosed,
    Unauthenticated,
    Unavailable,
)

__all__ = ["status_of"]


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

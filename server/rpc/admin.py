"""The Admin service: operator calls (server/operator_actions.py) over gRPC. Every call needs
the operator token as "authorization: Bearer TOKEN" metadata; with no token configured, admin
is closed."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from collector.gen.pulsewire.v1 import admin_pb2
from server.errors import PulsewireError, RateLimited, Unauthenticated
from server.ingest.rate import FailureLimit
from server.operator_actions import OperatorActions
from server.rpc.gen.pulsewire.v1 import admin_pb2_grpc
from server.rpc.ingest import peer_host
from server.rpc.status import status_of

__all__ = ["AdminServicer"]

Reply = TypeVar("Reply")


class AdminServicer(admin_pb2_grpc.AdminServicer):
    def __init__(self, actions: OperatorActions, operator_token: str,
                 refused_per_minute: int = 30) -> None:
        self._actions = actions
        self._token = operator_token
        self._refused = FailureLimit(refused_per_minute)  # guessing the token costs time

    async def _call(self, context: grpc.aio.ServicerContext[Any, Any],
                    work: Callable[[], Awaitable[Reply]]) -> Reply:
        try:
            self._check_token(context)
            return await work()
        except LookupError as err:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(err.args[0]))
        except PulsewireError as err:
            await context.abort(status_of(err), str(err))
        raise AssertionError("unreachable")

    def _check_token(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        peer, now = peer_host(context.peer()), self._actions.now_ms()
        if not self._refused.allowed(peer, now):
            raise RateLimited("too many refused tokens from this address: wait a minute")
        metadata = dict(context.invocation_metadata() or ())
        given = str(metadata.get("authorization", ""))
        if not self._token or not hmac.compare_digest(given.encode(),
                                                      f"Bearer {self._token}".encode()):
            self._refused.refused(peer, now)
            raise Unauthenticated("admin needs the operator token")

    async def ReloadSequences(self, request: admin_pb2.ReloadSequencesRequest,
                              context: grpc.aio.ServicerContext[Any, Any],
                              ) -> admin_pb2.ReloadSequencesResponse:
        async def work() -> admin_pb2.ReloadSequencesResponse:
            return admin_pb2.ReloadSequencesResponse(sequences=self._actions.reload())
        return await self._call(context, work)

    async def GetUser(self, request: admin_pb2.GetUserRequest,
                      context: grpc.aio.ServicerContext[Any, Any]) -> admin_pb2.UserView:
        return await self._call(context, lambda: self._actions.user_view(request.user))

    async def Suppress(self, request: admin_pb2.SuppressRequest,
                       context: grpc.aio.ServicerContext[Any, Any]) -> admin_pb2.SuppressResponse:
        async def work() -> admin_pb2.SuppressResponse:
            await self._actions.suppress(request.email, request.suppressed)
            return admin_pb2.SuppressResponse()
        return await self._call(context, work)

    async def EraseUser(self, request: admin_pb2.EraseUserRequest,
                        context: grpc.aio.ServicerContext[Any, Any],
                        ) -> admin_pb2.EraseUserResponse:
        async def work() -> admin_pb2.EraseUserResponse:
            return admin_pb2.EraseUserResponse(rows_removed=await self._actions.erase(request.user))
        return await self._call(context, work)

    async def Stats(self, request: admin_pb2.StatsRequest,
                    context: grpc.aio.ServicerContext[Any, Any]) -> admin_pb2.StatsResponse:
        return await self._call(context, self._actions.stats)


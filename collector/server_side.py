"""Server-side events from a site's backend, over native gRPC (CPython only: needs grpcio).

A shop's backend knows things a browser never sees for sure: the order really went through,
the user really owns that address. It sends them with this client, which signs the identity
with the site secret (so the user counts as verified) and sends each batch with `Ingest.Send`,
retrying the very same batch (same device id and seq, so the server applies it once) while the
server is unreachable or answers UNAVAILABLE, and failing at once on a refusal that a retry
cannot fix. Each call is its own device ("server:<random>"), so concurrent calls never share a
batch number.

    client = ServerSideClient("127.0.0.1:50051", "demo", "change-me")
    await client.send("u-42", "ann@example.com", [("purchase", {"order_id": "o-1", ...})])
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from collector.batching import BatchContext
from collector.gen.pulsewire.v1 import batch_pb2
from collector.identity import sign_email, sign_identity
from collector.session import Collector
from collector.track import Props

__all__ = ["RETRYABLE", "ServerSideClient", "sign_email"]

RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                       grpc.StatusCode.INTERNAL})


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class ServerSideClient:
    def __init__(self, target: str, site_key: str, site_secret: str, *,
                 attempts: int = 5, backoff_s: float = 0.2, timeout_s: float = 10.0,
                 now_ms: Callable[[], int] = _wall_ms) -> None:
        self._target = target
        self._site_key = site_key
        self._secret = site_secret
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._timeout_s = timeout_s
        self._now_ms = now_ms

    def __repr__(self) -> str:
        return f"ServerSideClient({self._target!r}, {self._site_key!r}, <secret>)"

    def batches(self, user_id: str, email: str,
                events: Sequence[tuple[str, Props]]) -> list[batch_pb2.Batch]:
        """The signed batches for these events, as `send` would send them."""
        now = self._now_ms()
        collector = Collector(self._site_key, f"server:{secrets.token_hex(8)}",
                              context=BatchContext(collector="server/0.1.0"))
        collector.identify(user_id, email, sign_identity(self._secret, user_id, email), now)
        for name, props in events:
            collector.track(name, props, now)
        return collector.flush(now)

    async def send(self, user_id: str, email: str,
                   events: Sequence[tuple[str, Props]]) -> list[batch_pb2.Ack]:
        batches = self.batches(user_id, email, events)
        async with grpc.aio.insecure_channel(self._target) as channel:
            send = channel.unary_unary(
                "/pulsewire.v1.Ingest/Send",
                request_serializer=batch_pb2.Batch.SerializeToString,
                response_deserializer=batch_pb2.Ack.FromString)
            return [await self._send_one(send, batch) for batch in batches]

    async def _send_one(self, send: Any, batch: batch_pb2.Batch) -> batch_pb2.Ack:
        for attempt in range(1, self._attempts + 1):
            try:
                ack: batch_pb2.Ack = await send(batch, timeout=self._timeout_s)
                return ack
            except grpc.aio.AioRpcError as err:
                if err.code() not in RETRYABLE or attempt == self._attempts:
                    raise
            await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

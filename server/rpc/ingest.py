"""The Ingest service over gRPC: thin servicers over the transport-neutral `Ingestor`
(server/ingest/). A unary Send answers a refused batch with a gRPC status. A Stream answers
every batch with an Ack, a refused one with a Rejection inside it, so one bad batch never ends
the stream; batches of a stream are applied concurrently (up to STREAM_WINDOW at a time) and
acked as they commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from collector.gen.pulsewire.v1 import batch_pb2
from server.errors import PulsewireError
from server.ingest import Ingestor, ack_of
from server.rpc.gen.pulsewire.v1 import ingest_pb2_grpc
from server.rpc.status import status_of

__all__ = ["STREAM_WINDOW", "IngestServicer", "peer_host"]

log = logging.getLogger("pulsewire.ingest")
STREAM_WINDOW = 64


def peer_host(peer: str) -> str:
    """The client's address in gRPC's peer string ("ipv4:10.0.0.7:53412" -> "10.0.0.7")."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    return rest.rpartition(":")[0] if kind == "ipv4" else peer


class IngestServicer(ingest_pb2_grpc.IngestServicer):
    def __init__(self, ingestor: Ingestor, stream_idle_s: float = 300.0) -> None:
        self._ingestor = ingestor
        self._stream_idle_s = stream_idle_s

    async def Send(self, request: batch_pb2.Batch,
                   context: grpc.aio.ServicerContext[batch_pb2.Batch, batch_pb2.Ack],
                   ) -> batch_pb2.Ack:
        try:
            return await self._ingestor.accept(request, peer_host(context.peer()))
        except PulsewireError as err:
            await context.abort(status_of(err), str(err))
        except Exception:
            log.exception("ingest failed")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; retry the batch")
        raise AssertionError("unreachable")

    async def Stream(self, request_iterator: AsyncIterator[batch_pb2.Batch],
                     context: grpc.aio.ServicerContext[batch_pb2.Batch, batch_pb2.Ack],
                     ) -> AsyncIterator[batch_pb2.Ack]:
        acks: asyncio.Queue[batch_pb2.Ack | None] = asyncio.Queue()
        window = asyncio.Semaphore(STREAM_WINDOW)
        pending: set[asyncio.Task[None]] = set()

        peer = peer_host(context.peer())

        async def one(batch: batch_pb2.Batch) -> None:
            try:
                ack = await self._ingestor.accept(batch, peer)
            except Exception as err:
                if not isinstance(err, PulsewireError):
                    log.exception("ingest failed")
                code = status_of(err)
                message = str(err) if isinstance(err, PulsewireError) else "internal error"
                rejection = batch_pb2.Rejection(code=code.value[0], message=message)
                ack = ack_of(batch, rejection=rejection)
            finally:
                window.release()
            await acks.put(ack)

        idle = asyncio.Event()

        async def read() -> None:
            batches = aiter(request_iterator)
            try:
                while True:
                    try:
                        batch = await asyncio.wait_for(anext(batches), self._stream_idle_s)
                    except StopAsyncIteration:
                        break
                    except TimeoutError:  # a stream that sends nothing holds nothing for ever
                        idle.set()
                        break
                    await window.acquire()
                    task = asyncio.create_task(one(batch))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                await asyncio.gather(*pending)
            finally:
                await acks.put(None)

        reader = asyncio.create_task(read())
        try:
            while (ack := await acks.get()) is not None:
                yield ack
        finally:
            reader.cancel()
        if idle.is_set():
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"no batch for {self._stream_idle_s:g} s: stream ended")

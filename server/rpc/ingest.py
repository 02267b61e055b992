"""The Ingest service: batches in, acks out once durable. Transport-independent core
(`Ingestor`) plus the thin gRPC servicer; gRPC-Web and beacons reuse the same core.

A resumable batch leaves its stream's site, device, context and strings in `ResumedStreams`
(server/rpc/resume.py), and its ack carries the token that later, resumed batches name instead;
a resumed batch is read in full (decoded, delivered and named in its ack as if sent so).

A unary Send answers a refused batch with a gRPC status. A Stream answers every batch with an
Ack, a refused one with a Rejection inside it, so one bad batch never ends the stream; batches
of a stream are applied concurrently (up to STREAM_WINDOW at a time) and acked as they commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from collector.gen.pulsewire.v1 import batch_pb2
from server.clock import Clock
from server.config import Settings
from server.errors import PulsewireError
from server.rpc.batches import DecodedBatch, decode_batch
from server.rpc.gen.pulsewire.v1 import ingest_pb2_grpc
from server.rpc.rate import TokenBucket
from server.rpc.resume import ResumedStreams, ResumeUnknown
from server.rpc.status import RateLimited, Unauthenticated, status_of
from server.storage.router import shard_of
from server.storage.shard import IngestResult, Shard

__all__ = ["STREAM_WINDOW", "IngestServicer", "Ingestor", "ack_of"]

log = logging.getLogger("pulsewire.ingest")
STREAM_WINDOW = 64


class Ingestor:
    def __init__(self, settings: Settings, shards: list[Shard], clock: Clock,
                 on_rejected: Callable[[str], None] = lambda _reason: None,
                 on_accepted: Callable[[int], None] = lambda _n: None,
                 on_bot: Callable[[int], None] = lambda _n: None) -> None:
        self._settings = settings
        self._shards = shards
        self._clock = clock
        self._buckets = {s.key: TokenBucket(settings.ingest.site_events_per_s,
                                            settings.ingest.site_burst_events)
                         for s in settings.sites}
        self._on_rejected = on_rejected
        self._on_accepted = on_accepted
        self._on_bot = on_bot
        self._devices = _DeviceOwners()
        self.resumed = ResumedStreams()

    def _shard(self, key: str) -> Shard:
        return self._shards[shard_of(key, len(self._shards))]

    async def _identity_route(self, user_key: str, device: str) -> tuple[str, bytes | None]:
        """Where a batch goes, and an anonymous history to merge on the way.

        An identified batch from a device seen anonymously brings that history along (it is
        merged into the user, then the device's profile becomes an alias). An anonymous batch
        from a device that has become a user goes to that user. Both facts are cached here,
        so the device's shard is asked once per device, not once per batch."""
        device_key = f"d:{device}"
        owner = self._devices.owner(device)
        if user_key == device_key:
            if owner is None:
                owner = await self._shard(device_key).alias_of(device_key) or device_key
                self._devices.remember(device, owner)
            return owner, None
        if owner == user_key:
            return user_key, None
        return user_key, await self._shard(device_key).anonymous_state(device_key)

    async def accept(self, batch: batch_pb2.Batch) -> batch_pb2.Ack:
        try:
            return await self._accept(batch)
        except PulsewireError as err:
            self._on_rejected(type(err).__name__)
            raise

    def site_key_of(self, batch: batch_pb2.Batch) -> str:
        """The batch's site: its own key, or for a resumed batch its stream's ("" unknown)."""
        if not batch.resume:
            return batch.site_key
        try:
            return self.resumed.get(batch.resume, self._clock.now_ms()).site_key
        except ResumeUnknown:
            return ""

    async def _accept(self, batch: batch_pb2.Batch) -> batch_pb2.Ack:
        now = self._clock.now_ms()
        full, earlier = self.resumed.read(batch, now)
        site = self._settings.site(full.site_key)
        if site is None:
            raise Unauthenticated("unknown site key")
        limits = self._settings.ingest
        size = batch.ByteSize()  # as it came
        if size > limits.max_batch_bytes:
            raise RateLimited(f"batch is {size} bytes, at most {limits.max_batch_bytes}")
        decoded = decode_batch(full, site, limits, now)
        if full.context.device_class == batch_pb2.Context.BOT:
            # Declared automation: counted, never stored, so it can never trigger an email.
            self._on_bot(len(decoded.events))
            return ack_of(full)
        if not self._buckets[site.key].take(len(decoded.events), now):
            raise RateLimited(f"site {site.key!r} is over {limits.site_events_per_s:g} events/s")
        result = await self.deliver(full, decoded, now)
        if not result.duplicate:
            self._on_accepted(result.accepted)
        ack = ack_of(full, accepted=0 if result.duplicate else result.accepted,
                     duplicate=result.duplicate)
        ack.resume, ack.strings_kept = self.resumed.answer(batch, full, earlier, now)
        return ack

    async def deliver(self, batch: batch_pb2.Batch, decoded: DecodedBatch,
                      now_ms: int) -> IngestResult:
        """Make an accepted batch durable: here, straight into the user's shard (the
        distributed mode publishes it to the shard's log instead)."""
        user_key, merge_from = await self._identity_route(decoded.user_key, decoded.device)
        shard = self._shard(user_key)
        result = await shard.ingest(user_key, decoded.events, device=decoded.device,
                                    seq=decoded.seq, identity=decoded.identity,
                                    merge_from=merge_from)
        device_key = f"d:{decoded.device}"
        if user_key != device_key and self._devices.owner(decoded.device) != user_key:
            # The device is this user's from now on, durably: its later batches carry no
            # identity, and after a restart the alias is what routes them to the user.
            if merge_from is not None:
                await self._shard(device_key).retire(device_key, user_key)
            else:
                await self._shard(device_key).alias(device_key, user_key)
            self._devices.remember(decoded.device, user_key)
        return result


def ack_of(batch: batch_pb2.Batch, **fields: Any) -> batch_pb2.Ack:
    """An answer naming `batch` (device, stream, seq, or its resume token), with `fields`."""
    return batch_pb2.Ack(seq=batch.seq, device_id=batch.device_id, stream=batch.stream,
                         resume=batch.resume, **fields)


class _DeviceOwners:
    """device id -> the routing key its batches belong to, for the most recent devices."""

    def __init__(self, capacity: int = 200_000) -> None:
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._capacity = capacity

    def owner(self, device: str) -> str | None:
        owner = self._owners.get(device)
        if owner is not None:
            self._owners.move_to_end(device)
        return owner

    def remember(self, device: str, owner: str) -> None:
        self._owners[device] = owner
        self._owners.move_to_end(device)
        if len(self._owners) > self._capacity:
            self._owners.popitem(last=False)


class IngestServicer(ingest_pb2_grpc.IngestServicer):
    def __init__(self, ingestor: Ingestor) -> None:
        self._ingestor = ingestor

    async def Send(self, request: batch_pb2.Batch,
                   context: grpc.aio.ServicerContext[batch_pb2.Batch, batch_pb2.Ack],
                   ) -> batch_pb2.Ack:
        try:
            return await self._ingestor.accept(request)
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

        async def one(batch: batch_pb2.Batch) -> None:
            try:
                ack = await self._ingestor.accept(batch)
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

        async def read() -> None:
            try:
                async for batch in request_iterator:
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

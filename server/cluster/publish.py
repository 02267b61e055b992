"""Ingest in the distributed mode: any node takes a batch, checks it exactly as the embedded
server does (site key, limits, decoding, bots, rate), and publishes it to its device's shard;
the client's ack waits for JetStream's. The shard's owner, wherever it runs, applies it."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from collector.gen.pulsewire.v1 import batch_pb2
from server.cluster.entries import ANON, CLAIM, OP, USER, LogEntry
from server.cluster.jetstream import JetStreamLog
from server.engine import Event
from server.ingest import DecodedBatch
from server.storage.router import device_key as device_key_of
from server.storage.router import shard_of
from server.storage.shard import IngestResult

__all__ = ["LogDelivery", "LogReach", "publish_events", "publish_op"]


class LogDelivery:
    """The distributed mode's `Delivery`: an accepted batch goes onto its device's shard log;
    the client's ack waits for JetStream's."""

    def __init__(self, log: JetStreamLog, shard_count: int) -> None:
        self._log = log
        self._count = shard_count

    async def deliver(self, batch: batch_pb2.Batch, decoded: DecodedBatch,
                      now_ms: int) -> IngestResult:
        device_key = device_key_of(decoded.device)
        kind = ANON if decoded.user_key == device_key else CLAIM
        entry = LogEntry(kind, decoded.user_key, now_ms, decoded.device, decoded.seq,
                         batch.SerializeToString())
        duplicate = await self._log.publish(shard_of(device_key, self._count), entry, "b")
        return IngestResult(len(decoded.events), duplicate)


class LogReach:
    """The distributed mode's `OperatorReach`: an erase or suppress goes onto every shard's
    log, and returns once durable, before it is applied (erase reports 0 rows)."""

    def __init__(self, log: JetStreamLog, shard_count: int, now_ms: Callable[[], int]) -> None:
        self._log = log
        self._count = shard_count
        self._now_ms = now_ms

    async def suppress(self, address: str, suppressed: bool) -> None:
        await publish_op(self._log, self._count, "suppress" if suppressed else "unsuppress",
                         address, at_ms=self._now_ms())

    async def erase(self, who: str) -> int:
        await publish_op(self._log, self._count, "erase", who, at_ms=self._now_ms())
        return 0


async def publish_events(log: JetStreamLog, shard_count: int, user_key: str,
                         events: Iterable[Event], *, at_ms: int, device: str = "",
                         seq: int = 0) -> None:
    """Engine events for a user (an open, a click, a bounce) onto the user's shard."""
    entry = LogEntry(USER, user_key, at_ms, device, seq, events=tuple(events))
    await log.publish(shard_of(user_key, shard_count), entry, "e")


async def publish_op(log: JetStreamLog, shard_count: int, op: str, argument: str, *,
                     at_ms: int, skip: int = -1) -> None:
    """An operator's call (erase, suppress, unsuppress) onto every shard's subject but `skip`."""
    entry = LogEntry(OP, op, at_ms, argument)
    for shard in range(shard_count):
        if shard != skip:
            await log.publish(shard, entry, "op")

"""Ingest in the distributed mode: any node takes a batch, checks it exactly as the embedded
server does (site key, limits, decoding, bots, rate), and publishes it to its device's shard;
the client's ack waits for JetStream's. The shard's owner, wherever it runs, applies it."""

from __future__ import annotations

from collections.abc import Iterable

from collector.gen.pulsewire.v1 import batch_pb2
from server.cluster.entries import ANON, CLAIM, OP, USER, LogEntry
from server.cluster.jetstream import JetStreamLog
from server.engine import Event
from server.rpc.batches import DecodedBatch
from server.rpc.ingest import Ingestor
from server.storage.router import shard_of
from server.storage.shard import IngestResult

__all__ = ["LogIngestor", "publish_events", "publish_op"]


class LogIngestor(Ingestor):
    def __init__(self, *args: object, log: JetStreamLog, shard_count: int,
                 **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._log = log
        self._count = shard_count

    async def deliver(self, batch: batch_pb2.Batch, decoded: DecodedBatch,
                      now_ms: int) -> IngestResult:
        device_key = f"d:{decoded.device}"
        kind = ANON if decoded.user_key == device_key else CLAIM
        entry = LogEntry(kind, decoded.user_key, now_ms, decoded.device, decoded.seq,
                         batch.SerializeToString())
        duplicate = await self._log.publish(shard_of(device_key, self._count), entry, "b")
        return IngestResult(len(decoded.events), duplicate)


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

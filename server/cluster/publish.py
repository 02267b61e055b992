"""Ingest in the distributed mode: any node takes a batch, checks it exactly as the embedded
server does (site key, limits, decoding, bots, rate), and publishes it to its device's shard;
the client's ack waits for JetStream's. The shard's owner, wherever it runs, applies it. An
operator's call reaches every shard the same way (`LogReach`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from collector.gen.pulsewire.v1 import batch_pb2
from server.cluster.entries import ANON, CLAIM, OP, USER, LogEntry
from server.cluster.jetstream import JetStreamLog
from server.cluster.shard_table import ShardTable
from server.cluster.shared_counters import CounterRows, SharedCounters
from server.engine import Event
from server.errors import Unavailable
from server.ingest import DecodedBatch
from server.operator_actions import Counters
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
    log, and returns once durable, before it is applied (erase reports 0 rows). The counters
    are every shard's: those held here read live, the others as their holders last shared
    them (server/cluster/shared_counters.py)."""

    def __init__(self, log: JetStreamLog, held: ShardTable, shared: SharedCounters,
                 now_ms: Callable[[], int]) -> None:
        self._log = log
        self._count = len(held)
        self._held = held
        self._shared = shared
        self._now_ms = now_ms

    async def suppress(self, address: str, suppressed: bool) -> None:
        await publish_op(self._log, self._count, "suppress" if suppressed else "unsuppress",
                         address, at_ms=self._now_ms())

    async def erase(self, who: str) -> int:
        await publish_op(self._log, self._count, "erase", who, at_ms=self._now_ms())
        return 0

    async def counters(self) -> Counters:
        """Each shard counted once: live if held here, else from the bucket (a shard never
        shared counts nothing). Raises Unavailable when the bucket is out of reach."""
        rows: dict[int, CounterRows] = {}
        for shard in self._held:
            try:
                rows[shard.index] = await shard.stats()
            except Exception:
                if shard.index in self._held:
                    raise
                # handed back while read: its last counters were shared on the way out
        elsewhere = [index for index in range(self._count) if index not in rows]
        if elsewhere and not self._log.nc.is_connected:
            raise Unavailable("NATS is out of reach, so are the counters of the shards held"
                              " elsewhere; retry")
        rows |= await self._shared.read(elsewhere)
        totals: Counters = {}
        for shard_rows in rows.values():
            for sequence, step, counter, n in shard_rows:
                totals[(sequence, step, counter)] = totals.get((sequence, step, counter), 0) + n
        return totals


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

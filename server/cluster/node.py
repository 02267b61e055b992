"""This process's part of the cluster: which shards it holds, and their owners.

Every TICK of the lease TTL the node renews its presence and its shard leases (a lease it
lost is dropped at once: its owner stops, its file closes), then looks at each shard:
  - its own shards by the static map it takes whenever their lease is free;
  - with failover on, a shard whose preferred node is gone (no presence) and whose lease lapsed
    it takes too, once it has been up a whole TTL (so a peer starting beside it is not raced);
  - a shard it holds for a node that is back it hands back: stop, snapshot, give up the lease.
Every tick too it shares the counters of the shards it holds that changed (and once more as it
hands one back), so any node answers Stats for every shard (server/cluster/shared_counters.py).
Taking a shard: the latest snapshot if it is further along than the local file, open with
timers held, replay the subject from the file's position, then timers run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

from server.clock import Clock
from server.cluster.jetstream import JetStreamLog
from server.cluster.leases import Leases
from server.cluster.owner import ShardOwner
from server.cluster.publish import LogDelivery, LogReach, publish_events
from server.cluster.send_claims import SendClaims
from server.cluster.shard_table import ShardTable
from server.cluster.shared_counters import SharedCounters
from server.cluster.snapshots import Snapshots
from server.config import Settings
from server.engine import Event
from server.errors import ShardClosed, Unavailable
from server.metrics import Metrics
from server.storage.shard import Shard
from server.storage.statements import file_log_position

__all__ = ["Cluster", "ClusterNode", "cluster_node"]

log = logging.getLogger("pulsewire.cluster")
TICK = 0.1  # of the lease TTL
WATERMARK_EVERY_S = 0.1
TIMER_MARGIN_MS = 100  # publish latency and clock skew between nodes


class ClusterNode:
    def __init__(self, settings: Settings, log_: JetStreamLog, clock: Clock,
                 open_shard: Callable[[int, Callable[[], int]], Awaitable[Shard]],
                 path_of: Callable[[int], Path]) -> None:
        self._settings = settings
        self._clock = clock
        self._cluster = settings.cluster
        self._log = log_
        self._open_shard = open_shard
        self._path_of = path_of
        self.node = self._cluster.node
        self.shards = ShardTable(settings.server.shards)
        self._owners: dict[int, ShardOwner] = {}
        self._leases = Leases(log_.leases, self.node)
        self._snapshots = Snapshots(log_.snapshots)
        self._counters = SharedCounters(log_.stats, refresh_s=self._cluster.lease_ttl_s)
        self._saved: dict[int, int] = {}  # shard -> position of the last snapshot saved here
        self._up_since = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._side_tasks: set[asyncio.Future[None]] = set()
        self._stopping = False
        self.caught_up: set[int] = set()

    @property
    def tick_s(self) -> float:
        return self._cluster.lease_ttl_s * TICK

    async def start(self) -> None:
        self._up_since = time.monotonic()
        await self._leases.take(self._presence(self.node))
        await self._place()
        # Renewing never waits behind taking a shard, a snapshot upload or a watermark.
        self._tasks = [
            asyncio.create_task(self._every(self.tick_s, self._renew), name="cluster-leases"),
            asyncio.create_task(self._every(self.tick_s, self._place), name="cluster-placing"),
            asyncio.create_task(self._every(self._cluster.snapshot_every_s, self._snapshot_all),
                                name="cluster-snapshots"),
            asyncio.create_task(self._every(WATERMARK_EVERY_S, self._share_watermarks),
                                name="cluster-watermarks"),
            asyncio.create_task(self._every(self.tick_s, self._share_counters),
                                name="cluster-counters"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=self._cluster.lease_ttl_s)
        for index in list(self._owners):
            await self._release(index)
        await self._leases.give_up(self._presence(self.node))

    def positions(self) -> list[tuple[int, int, int, bool]]:
        """(shard, last applied log position, entries pending, caught up) per shard held."""
        return [(i, owner.applied, owner.pending, i in self.caught_up) for i, owner in
                sorted(self._owners.items())]

    # ---- the loops ----------------------------------------------------------------------------

    async def _every(self, period_s: float, step: Callable[[], Awaitable[None]]) -> None:
        while not self._stopping:
            await asyncio.sleep(period_s)
            try:
                await step()
            except Unavailable as err:
                log.warning("cluster: %s", err)
            except Exception:
                log.exception("cluster: %s failed", step.__name__)

    async def _renew(self) -> None:
        if not await self._leases.keep(self._presence(self.node)):
            await self._leases.take(self._presence(self.node))
        for index in list(self._owners):
            if not await self._leases.keep(self._lease(index)):
                log.warning("cluster: %s lost its lease on shard %d; dropping it", self.node,
                            index)
                self._background(self._drop(index))

    def _background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _share_watermarks(self) -> None:
        """Timers wait for the cluster: a timer due at D fires once every shard's owner has
        passed on all it holds that was accepted before D (a purchase accepted in time on
        another node, still on its way through a device's shard, must count)."""
        for index, owner in list(self._owners.items()):
            if owner.clear_ms:
                await self._leases.put(f"clear.{index}", str(owner.clear_ms))
        read_ms = self._clock.now_ms()
        count = self._settings.server.shards
        clear = await self._leases.holders([f"clear.{i}" for i in range(count)])
        if len(clear) < count:
            return  # a shard without a live owner: timers everywhere wait for its successor
        floor = min(int(v) for v in clear.values()) - TIMER_MARGIN_MS
        for owner in list(self._owners.values()):
            owner.offer(read_ms, floor)

    async def _share_counters(self) -> None:
        for owner in list(self._owners.values()):
            with contextlib.suppress(ShardClosed):  # dropped meanwhile
                await self._counters.share(owner.shard)

    async def _place(self) -> None:
        count = self._settings.server.shards
        nodes = [node for node, _ in self._cluster.owners]
        live = await self._leases.holders([self._lease(i) for i in range(count)]
                                          + [self._presence(n) for n in nodes])
        grace_over = time.monotonic() - self._up_since >= self._cluster.lease_ttl_s
        for index in range(count):
            if self._stopping:
                return
            preferred = self._cluster.preferred(index)
            if index in self._owners:
                if preferred != self.node and self._presence(preferred) in live:
                    await self._hand_back(index)
                continue
            if self._lease(index) in live:
                continue
            foreign_ok = (self._cluster.failover and grace_over
                          and self._presence(preferred) not in live)
            if (preferred == self.node or foreign_ok) and await self._leases.take(
                    self._lease(index)):
                await self._take(index, preferred)

    # ---- taking and giving shards -----------------------------------------------------------

    async def _take(self, index: int, preferred: str) -> None:
        started = time.monotonic()
        path = self._path_of(index)
        try:
            position = await self._snapshots.restore(index, path)
            shard = await self._open_shard(index, lambda: self._timers_until(index))
        except Exception:
            await self._leases.give_up(self._lease(index))
            raise
        owner = ShardOwner(shard, self._log, self._settings, self._clock,
                           on_caught_up=self._note_caught_up)
        self._owners[index] = owner
        self.shards.hold(shard)
        owner.start()
        if not await self._leases.keep(self._lease(index)):  # lapsed while it was being opened
            await self._drop(index)
            return
        log.warning("cluster: %s took shard %d%s at log position %d (%.0f ms)", self.node,
                    index, "" if preferred == self.node else f" from {preferred}",
                    max(position, 0), (time.monotonic() - started) * 1000)

    def _timers_until(self, index: int) -> int:
        owner = self._owners.get(index)
        return owner.timers_until if owner is not None else 0

    def _note_caught_up(self, index: int) -> None:
        if index not in self.caught_up and index in self._owners:
            self.caught_up.add(index)
            log.warning("cluster: %s shard %d caught up at log position %d", self.node, index,
                        self._owners[index].applied)

    async def _drop(self, index: int, *, share: bool = False) -> None:
        """Stop and close the shard; `share`: put its counters a last time before it closes."""
        owner = self._owners.pop(index, None)
        if owner is None:  # dropped already (a lapsed lease and a hand-back can cross)
            return
        self.shards.drop(index)
        self.caught_up.discard(index)
        await owner.stop()
        if share:
            try:
                await self._counters.share(owner.shard, always=True)
            except Unavailable as err:  # the next holder shares them once it has the shard
                log.warning("cluster: shard %d: %s", index, err)
        self._counters.forget(index)
        await owner.shard.close()

    async def _release(self, index: int) -> None:
        """Stop, share its counters and leave a snapshot for the next holder, then give up
        the lease."""
        await self._drop(index, share=True)
        try:
            await self._save(index)
        finally:
            await self._leases.give_up(self._lease(index))

    async def _hand_back(self, index: int) -> None:
        log.warning("cluster: %s hands shard %d back to %s", self.node, index,
                    self._cluster.preferred(index))
        await self._release(index)

    async def _snapshot_all(self) -> None:
        for index, owner in list(self._owners.items()):
            if owner.applied > self._saved.get(index, -1):
                await self._save(index)

    async def _save(self, index: int) -> None:
        path = self._path_of(index)
        if await self._snapshots.latest(index) > await asyncio.to_thread(file_log_position, path):
            return  # a newer copy is there already (another holder's)
        self._saved[index] = await self._snapshots.save(index, path)

    @staticmethod
    def _lease(index: int) -> str:
        return f"shard.{index}"

    @staticmethod
    def _presence(node: str) -> str:
        return f"node.{node}"


class Cluster(ClusterNode):
    """The node as the app's mode (server/modes.py): batches and engine events go onto the
    shard logs, sends are claimed cluster-wide, operator calls reach every shard's owner
    through the log."""

    def __init__(self, settings: Settings, log_: JetStreamLog, clock: Clock,
                 open_shard: Callable[[int, Callable[[], int]], Awaitable[Shard]],
                 path_of: Callable[[int], Path]) -> None:
        super().__init__(settings, log_, clock, open_shard, path_of)
        self.delivery = LogDelivery(log_, settings.server.shards)
        self.claims = SendClaims(log_.sent, settings.cluster.node)
        self.reach = LogReach(log_, self.shards, self._counters, clock.now_ms)

    async def apply_events(self, user_key: str, events: Iterable[Event], device: str = "",
                           seq: int = 0) -> None:
        await publish_events(self._log, self._settings.server.shards, user_key, events,
                             at_ms=self._clock.now_ms(), device=device, seq=seq)

    def watch(self, metrics: Metrics) -> None:
        metrics.watch_log(self.positions)


@asynccontextmanager
async def cluster_node(settings: Settings, clock: Clock,
                       open_shard: Callable[[int, Callable[[], int]], Awaitable[Shard]],
                       ) -> AsyncIterator[Cluster]:
    """Connect to NATS, take this node's shards, and hand them all back on the way out."""
    log_ = await JetStreamLog.connect(settings.cluster)
    try:
        node = Cluster(settings, log_, clock, open_shard,
                       lambda index: Path(settings.server.data_dir) / f"shard-{index:03d}.sqlite")
        await node.start()
        try:
            yield node
        finally:
            await node.stop()
    finally:
        await log_.close()

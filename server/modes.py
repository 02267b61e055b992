"""The two ways pulsewire runs, behind the same small interfaces, chosen once at start (like
uvicorn's protocol implementations): the embedded default, one process holding every shard
file (`single_process`), and the distributed mode, a node of a cluster on NATS JetStream
(server/cluster/, imported only when configured). The rest of the server never asks which one
runs.

A mode provides:
  shards        the shards this process holds (routing divides by `len`, the cluster's count)
  delivery      where an accepted batch goes to become durable (server/ingest/)
  claims        how a send is claimed before SMTP (one process: always its own)
  apply_events  engine events for a user that came in no batch: an open, a click, a bounce
  reach         how an operator's suppress or erase reaches every shard
  watch         what it adds to /metrics
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Protocol

from server.clock import Clock
from server.engine import Event
from server.ingest import Delivery, ShardDelivery
from server.metrics import Metrics
from server.operator_actions import OperatorReach, ShardOperations
from server.storage.router import shard_of
from server.storage.shard import Shard, Shards

__all__ = ["ApplyEvents", "Mode", "NoClaims", "SendClaims", "SingleProcess", "single_process"]

# (user key, events, device, seq): device and seq deduplicate, as for a batch ("" for none)
ApplyEvents = Callable[[str, Iterable[Event], str, int], Awaitable[None]]
OpenShard = Callable[[int, Callable[[], int] | None], Awaitable[Shard]]


class SendClaims(Protocol):
    async def claim(self, message_key: str) -> bool:
        """True: this process may send it now; False: it was sent or is being sent elsewhere.
        Raises Unavailable when that cannot be known now."""
        ...

    async def sent(self, message_key: str) -> None: ...

    async def give_back(self, message_key: str) -> None: ...


class Mode(Protocol):
    @property
    def shards(self) -> Shards: ...

    @property
    def delivery(self) -> Delivery: ...

    @property
    def claims(self) -> SendClaims: ...

    @property
    def reach(self) -> OperatorReach: ...

    async def apply_events(self, user_key: str, events: Iterable[Event], device: str = "",
                           seq: int = 0) -> None: ...

    def watch(self, metrics: Metrics) -> None: ...


class NoClaims:
    """One process holds its outboxes alone: every send is its own."""

    async def claim(self, message_key: str) -> bool:
        return True

    async def sent(self, message_key: str) -> None:
        return None

    async def give_back(self, message_key: str) -> None:
        return None


class SingleProcess:
    """The embedded default: every shard file here."""

    def __init__(self, shards: list[Shard], clock: Clock) -> None:
        self.shards: Shards = shards
        self.delivery: Delivery = ShardDelivery(shards)
        self.claims: SendClaims = NoClaims()
        self.reach: OperatorReach = ShardOperations(shards, clock.now_ms)

    async def apply_events(self, user_key: str, events: Iterable[Event], device: str = "",
                           seq: int = 0) -> None:
        shard = self.shards[shard_of(user_key, len(self.shards))]
        await shard.ingest(user_key, list(events), device=device, seq=seq)

    def watch(self, metrics: Metrics) -> None:
        return None


@asynccontextmanager
async def single_process(count: int, open_shard: OpenShard,
                         clock: Clock) -> AsyncIterator[SingleProcess]:
    """Open every shard; close them on the way out."""
    async with AsyncExitStack() as stack:
        held = []
        for index in range(count):
            shard = await open_shard(index, None)
            stack.push_async_callback(shard.close)
            held.append(shard)
        yield SingleProcess(held, clock)

"""Each shard's stats counters, shared through the key-value bucket `<stream>-stats`, so that
any node answers the Admin service's Stats for every shard, not only for those it holds.

A shard's holder puts the shard's rows (`shard.stats()`, msgpack) under `shard.<n>`: on its
tick when they changed since its last put, at least every `refresh_s` anyway (so a late write
by a holder that lost the shard and had not noticed yet does not stay), and once more when it
hands the shard back or stops. The bucket keeps one revision and no TTL: a shard whose owner is
down is still answered, with the counters it last shared. A reader takes the shards it holds
live and the others from here (server/cluster/publish.py, `LogReach.counters`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import msgpack
from nats.errors import Error as NatsError
from nats.js.errors import KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from server.errors import Unavailable
from server.storage.shard import Shard

__all__ = ["CounterRows", "SharedCounters"]

log = logging.getLogger("pulsewire.cluster")
CounterRows = list[tuple[str, int, str, int]]  # (sequence, step, counter, n), as shard.stats()


class SharedCounters:
    def __init__(self, bucket: KeyValue, refresh_s: float) -> None:
        self._bucket = bucket
        self._refresh_s = refresh_s
        self._last: dict[int, tuple[CounterRows, float]] = {}  # shard -> rows put, when

    async def share(self, shard: Shard, *, always: bool = False) -> None:
        """Put `shard`'s counters, unless they are those put less than `refresh_s` ago."""
        rows = sorted(await shard.stats())
        now = time.monotonic()
        last = self._last.get(shard.index)
        if not always and last is not None and last[0] == rows and (
                now - last[1] < self._refresh_s):
            return
        try:
            await self._bucket.put(_key(shard.index), msgpack.packb(rows))
        except (TimeoutError, NatsError) as err:
            raise Unavailable(f"the shared stats counters are out of reach"
                              f" ({type(err).__name__})") from None
        self._last[shard.index] = (rows, now)

    def forget(self, index: int) -> None:
        """The shard left this node: whoever holds it next puts it anew."""
        self._last.pop(index, None)

    async def read(self, indices: Sequence[int]) -> dict[int, CounterRows]:
        """The counters last shared of each shard in `indices` (none for a shard never shared)."""
        found = await asyncio.gather(*(self._read(index) for index in indices))
        return {index: rows for index, rows in zip(indices, found, strict=True)
                if rows is not None}

    async def _read(self, index: int) -> CounterRows | None:
        try:
            entry = await self._bucket.get(_key(index))
        except (KeyNotFoundError, KeyDeletedError):
            return None
        except (TimeoutError, NatsError) as err:
            raise Unavailable(f"the stats counters of shards held elsewhere are out of reach"
                              f" ({type(err).__name__}); retry") from None
        try:
            return [(str(s), int(st), str(c), int(n))
                    for s, st, c, n in msgpack.unpackb(entry.value or msgpack.packb([]))]
        except (ValueError, TypeError, msgpack.UnpackException):
            log.error("cluster: shard %d's shared stats counters are unreadable; left out", index)
            return None


def _key(index: int) -> str:
    return f"shard.{index}"

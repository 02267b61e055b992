"""The shards a node holds, by number, as the rest of the server sees them (`Shards`)."""

from __future__ import annotations

from collections.abc import Iterator

from server.errors import ShardClosed
from server.storage.shard import Shard

__all__ = ["ShardTable"]


class ShardTable:
    """The shards held here, by number. `len()` is the cluster's shard count (what routing
    divides by); iterating gives only the shards this process holds now."""

    def __init__(self, count: int) -> None:
        self.count = count
        self._held: dict[int, Shard] = {}

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Shard]:
        return iter([self._held[i] for i in sorted(self._held)])

    def __getitem__(self, index: int) -> Shard:
        try:
            return self._held[index]
        except KeyError:
            raise ShardClosed(f"shard {index} is not held by this node") from None

    def __contains__(self, index: object) -> bool:
        return index in self._held

    def hold(self, shard: Shard) -> None:
        self._held[shard.index] = shard

    def drop(self, index: int) -> None:
        self._held.pop(index, None)

"""Leases in JetStream's key-value store: `shard.<n>` names the node holding shard n, and
`node.<id>` says a node is alive. The bucket's TTL ends any key not updated in time, so a dead
node's leases lapse by themselves; taking one is a create (only one node can), keeping it is an
update against the revision this node last wrote (compare-and-set), so a node that lost its
lease learns it at its next update and stops at once."""

from __future__ import annotations

import contextlib

from nats.errors import Error as NatsError
from nats.js.errors import (
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
)
from nats.js.kv import KeyValue

from server.errors import Unavailable

__all__ = ["Leases"]


class Leases:
    def __init__(self, bucket: KeyValue, node: str) -> None:
        self._bucket = bucket
        self.node = node
        self._revisions: dict[str, int] = {}

    async def take(self, name: str) -> bool:
        try:
            self._revisions[name] = await self._bucket.create(name, self.node.encode())
        except KeyWrongLastSequenceError:
            return False
        except (TimeoutError, NatsError) as err:
            raise Unavailable(f"leases out of reach ({type(err).__name__})") from None
        return True

    async def keep(self, name: str) -> bool:
        """Renew a lease this node holds; False: it lapsed or another node has it now."""
        try:
            self._revisions[name] = await self._bucket.update(
                name, self.node.encode(), last=self._revisions.get(name, 0))
        except (KeyWrongLastSequenceError, KeyNotFoundError, KeyDeletedError):
            self._revisions.pop(name, None)
            return False
        except (TimeoutError, NatsError) as err:
            raise Unavailable(f"leases out of reach ({type(err).__name__})") from None
        return True

    async def give_up(self, name: str) -> None:
        revision = self._revisions.pop(name, None)
        if revision is None:
            return
        # Already lapsed or taken: the TTL ends it either way.
        with contextlib.suppress(TimeoutError, KeyWrongLastSequenceError, NatsError):
            await self._bucket.delete(name, last=revision)

    async def put(self, name: str, value: str) -> None:
        """A plain key (no lease): it too lapses when not written again within the TTL."""
        try:
            await self._bucket.put(name, value.encode())
        except (NatsError, TimeoutError) as err:
            raise Unavailable(f"leases out of reach ({type(err).__name__})") from None

    async def holders(self, names: list[str]) -> dict[str, str]:
        """The live leases among `names`: key -> node."""
        found = {}
        for name in names:
            try:
                entry = await self._bucket.get(name)
            except (KeyNotFoundError, KeyDeletedError):
                continue
            except (TimeoutError, NatsError) as err:
                raise Unavailable(f"leases out of reach ({type(err).__name__})") from None
            if entry.value:
                found[name] = entry.value.decode()
        return found

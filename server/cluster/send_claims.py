"""One send per email across the cluster: a key per message in JetStream's key-value store.

A node claims a message (create: only one node can) before handing it to SMTP, and marks it
sent after. A shard taken over from an older snapshot queues again what its last holder
already sent (the same message keys: the engine's keys are stable across replays); the claim
is what stops them. A transient failure gives the claim back, so whoever holds the shard next
may retry. A node that dies between its claim and SMTP's answer leaves a claim that stays:
that one email is not retried by another node (at most once across a crash, never twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib

from nats.errors import Error as NatsError
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from server.errors import Unavailable

__all__ = ["SendClaims"]


class SendClaims:
    def __init__(self, bucket: KeyValue, node: str) -> None:
        self._bucket = bucket
        self._node = node

    @staticmethod
    def _key(message_key: str) -> str:
        return hashlib.blake2b(message_key.encode(), digest_size=16).hexdigest()

    async def claim(self, message_key: str) -> bool:
        """True: this node may send it now. False: it was sent, or is being sent, elsewhere."""
        try:
            await self._bucket.create(self._key(message_key), f"sending {self._node}".encode())
        except KeyWrongLastSequenceError:
            return False
        except (TimeoutError, NatsError) as err:
            raise Unavailable(f"send claims out of reach ({type(err).__name__})") from None
        return True

    async def sent(self, message_key: str) -> None:
        # Out of reach: the claim stands, and that is what keeps it from a second send.
        with contextlib.suppress(TimeoutError, NatsError):
            await self._bucket.put(self._key(message_key), f"sent {self._node}".encode())

    async def give_back(self, message_key: str) -> None:
        with contextlib.suppress(NatsError, asyncio.TimeoutError):
            await self._bucket.delete(self._key(message_key))

"""The transport-neutral ingest core: a batch in, an ack out once the batch is durable. The
gRPC servicer (server/rpc/ingest.py), gRPC-Web, beacons and the raw-signal path all call
`Ingestor.accept`.

A batch is checked (site key, size, decoding, declared bots, the site's rate) and handed to
the mode's `Delivery`: in one process `ShardDelivery` routes it to its user's shard (identity
routing: server/ingest/routing.py) and returns once committed; the distributed mode publishes
it to its device's shard log instead. A resumable batch leaves its stream's site, device,
context and strings in `ResumedStreams` (server/ingest/resume.py), and its ack carries the token
that later, resumed batches name instead; a resumed batch is read in full (decoded, delivered
and named in its ack as if sent so).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from collector.gen.pulsewire.v1 import batch_pb2
from server.clock import Clock
from server.config import Settings
from server.errors import RateLimited, Unauthenticated
from server.ingest.batches import DecodedBatch, decode_batch
from server.ingest.rate import FailureLimit, TokenBucket
from server.ingest.resume import ResumedStreams, ResumeUnknown
from server.ingest.routing import link_kind, route
from server.storage.router import device_key, shard_of
from server.storage.shard import IngestResult, Shard, Shards

__all__ = ["REFUSED_KEY_DELAY_S", "Delivery", "Ingestor", "ShardDelivery", "ack_of"]

REFUSED_KEY_DELAY_S = 2.0  # one budget token grows back in 2 s: 30 a minute, sustained


class Delivery(Protocol):
    """Where an accepted batch goes to become durable."""

    async def deliver(self, batch: batch_pb2.Batch, decoded: DecodedBatch,
                      now_ms: int) -> IngestResult: ...


class Ingestor:
    def __init__(self, settings: Settings, delivery: Delivery, clock: Clock,
                 on_rejected: Callable[[str], None] = lambda _reason: None,
                 on_accepted: Callable[[int], None] = lambda _n: None,
                 on_bot: Callable[[int], None] = lambda _n: None) -> None:
        self._settings = settings
        self._delivery = delivery
        self._clock = clock
        limits = settings.ingest
        self._buckets = {s.key: TokenBucket(limits.site_events_per_s, limits.site_burst_events)
                         for s in settings.sites}
        self._batch_buckets = {s.key: TokenBucket(limits.site_batches_per_s,
                                                  limits.site_burst_batches)
                               for s in settings.sites}
        self.refused_keys = FailureLimit(limits.refused_keys_per_minute)
        self._on_rejected = on_rejected
        self._on_accepted = on_accepted
        self._on_bot = on_bot
        self.resumed = ResumedStreams()

    async def accept(self, batch: batch_pb2.Batch, peer: str = "") -> batch_pb2.Ack:
        """`peer`: the client's address, for the limit on refused site keys."""
        try:
            return await self._accept(batch)
        except Unauthenticated as err:
            self._on_rejected(Unauthenticated.__name__)
            await self.refused_key(peer, err)
            raise
        except Exception as err:  # every refusal counted by reason, an internal error too
            self._on_rejected(type(err).__name__)
            raise

    async def refused_key(self, peer: str, err: Exception) -> None:
        """A peer gave an unknown site key. Past its budget (30 a minute) each further one is
        answered only after REFUSED_KEY_DELAY_S, as RESOURCE_EXHAUSTED: guessing slows to a
        crawl, while known keys from the same address (a proxy's other clients) go on."""
        now = self._clock.now_ms()
        over = bool(peer) and not self.refused_keys.allowed(peer, now)
        self.refused_keys.refused(peer, now)
        if over:
            await asyncio.sleep(REFUSED_KEY_DELAY_S)
            raise RateLimited("too many refused site keys from this address: wait a minute"
                              ) from err

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
        if not self._batch_buckets[site.key].take(1, now):
            raise RateLimited(f"site {site.key!r} is over {limits.site_batches_per_s:g} "
                              "batches/s")
        if not self._buckets[site.key].take(len(decoded.events), now):
            raise RateLimited(f"site {site.key!r} is over {limits.site_events_per_s:g} events/s")
        vouched = decoded.identity and (decoded.identity.verified or decoded.identity.user_id)
        if not decoded.events and not vouched:
            return ack_of(full)  # it carries nothing to keep: no row is written for it
        result = await self._delivery.deliver(full, decoded, now)
        if not result.duplicate:
            self._on_accepted(result.accepted)
        ack = ack_of(full, accepted=0 if result.duplicate else result.accepted,
                     duplicate=result.duplicate)
        ack.resume, ack.strings_kept = self.resumed.answer(batch, full, earlier, now)
        return ack



class ShardDelivery:
    """One process: a batch goes straight into its user's shard, returning once committed."""

    def __init__(self, shards: Shards) -> None:
        self._shards = shards
        self._devices = _DeviceOwners()

    def _shard(self, key: str) -> Shard:
        return self._shards[shard_of(key, len(self._shards))]

    async def deliver(self, batch: batch_pb2.Batch, decoded: DecodedBatch,
                      now_ms: int) -> IngestResult:
        device = device_key(decoded.device)
        to = route(decoded.user_key, device, await self._owner(decoded.user_key, decoded.device))
        history = await self._shard(device).anonymous_state(device) if to.claims else None
        dedup = await self._shard(device).dedup_of(decoded.device) if history else None
        result = await self._shard(to.key).ingest(to.key, decoded.events, device=decoded.device,
                                                   seq=decoded.seq, identity=decoded.identity,
                                                   merge_from=history, dedup_from=dedup)
        if to.claims and self._devices.owner(decoded.device) != to.key:
            # The device is this user's from now on, durably: its later batches carry no
            # identity, and after a restart the alias is what routes them to the user.
            await self._shard(device).enqueue_link(link_kind(history), device, to.key)
            self._devices.remember(decoded.device, to.key)
        return result

    async def _owner(self, batch_key: str, device: str) -> str | None:
        """Who the device belongs to, as far as known: cached, and for an anonymous batch
        asked of the device's shard once (an alias written before a restart)."""
        owner = self._devices.owner(device)
        if owner is None and batch_key == device_key(device):
            owner = await self._shard(batch_key).alias_of(batch_key) or batch_key
            self._devices.remember(device, owner)
        return owner


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

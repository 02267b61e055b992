"""A shard's owner: the one process applying the shard's subject to the shard's file.

It reads the subject through a durable consumer that starts after the file's own log
position, takes up to FETCH entries at a time and, in order:
  - an ANON entry goes to the device's profile here, or on to the user the device belongs to;
  - a CLAIM first folds the device's anonymous history into the user (awaiting what is
    queued for the device, so the history is whole), passes the batch on with that history,
    and notes the device as the user's (an alias, or a retire when a history moved);
  - a USER entry is applied here.
Passing on is a publish to the user's shard subject, acknowledged by JetStream before any later
entry is applied, so when a position is committed everything before it is either in the file
or durably on its way. Each entry's position goes into the shard transaction that applies it
(or a light position-only item), so after a crash the file says exactly where to resume and
nothing is applied twice (the shard's dedup keys catch a batch passed on twice). Timers wait
until the backlog is applied: a timer must not fire ahead of events accepted before it was due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout

from collector.gen.pulsewire.v1 import batch_pb2
from server.clock import Clock
from server.cluster.entries import ANON, CLAIM, OP, InvalidEntry, LogEntry
from server.cluster.jetstream import JetStreamLog
from server.cluster.publish import publish_op
from server.config import Settings
from server.engine import Event
from server.errors import PulsewireError, ShardClosed, Unavailable
from server.ingest import decode_batch, link_kind, route
from server.operator_actions import ShardOperations, find_users
from server.storage.router import shard_of
from server.storage.shard import Identity, Shard

__all__ = ["ShardOwner"]

log = logging.getLogger("pulsewire.cluster")
FETCH = 256
FETCH_WAIT_S = 0.1
STOP_WAIT_S = 4.0
_FEEDBACK = ("email_open", "email_click")


class ShardOwner:
    def __init__(self, shard: Shard, log_: JetStreamLog, settings: Settings, clock: Clock,
                 on_caught_up: Callable[[int], None] = lambda _shard: None) -> None:
        self._clock = clock
        self.shard = shard
        self._log = log_
        self._settings = settings
        self._count = settings.server.shards
        self._aliases: dict[str, str | None] = {}
        self._on_caught_up = on_caught_up
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.pending = 0  # entries JetStream still held for this shard at the last fetch
        self.applied = 0  # the last position applied (committed)
        # Everything stored on this shard's subject before `clear_ms` is applied (wall clock
        # when a fetch began that found the subject drained); 0: still replaying.
        self.clear_ms = 0
        self.timers_until = 0  # how far its timers may fire: 0 until the backlog is applied
        self._offers: list[tuple[int, int]] = []  # (read at, floor) awaiting a later clear_ms

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"owner-{self.shard.index}")

    async def stop(self) -> None:
        """Stop consuming (what was not committed is applied again by the next holder, from
        the file's position); the shard stays open. Bounded: a consumer stuck on the network
        is left to end by itself, and can apply nothing more once the shard is closed."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            done, _ = await asyncio.wait([self._task], timeout=STOP_WAIT_S)
            if not done:
                log.error("shard %d: its consumer did not stop within %.0f s", self.shard.index,
                          STOP_WAIT_S)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # NATS away, a failed group: resume from the file
                quiet = isinstance(err, NatsError | Unavailable | asyncio.TimeoutError)
                log.log(logging.WARNING if quiet else logging.ERROR,
                        "shard %d: consuming stopped (%s); resuming", self.shard.index,
                        type(err).__name__, exc_info=not quiet)
                self._aliases.clear()
                await asyncio.sleep(0.5)

    async def _consume(self) -> None:
        self.applied = await self.shard.log_position()
        subscription = await self._log.consumer(self.shard.index, self.applied)
        try:
            while not self._stopping:
                asked_ms = self._clock.now_ms()
                try:
                    messages = await subscription.fetch(FETCH, timeout=FETCH_WAIT_S)
                except (NatsTimeout, TimeoutError):
                    messages = []
                if not messages:
                    self.pending = 0
                    self._caught_up(asked_ms)
                    continue
                await self._apply(messages)
                await messages[-1].ack()
                self.pending = messages[-1].metadata.num_pending
                if self.pending == 0:
                    self._caught_up(asked_ms)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(_unsubscribe(subscription), STOP_WAIT_S / 2)

    def offer(self, read_ms: int, floor_ms: int) -> None:
        """Every shard's owner had passed on all it holds accepted before `floor_ms`, as read
        at `read_ms`: this shard's timers may fire up to it once this shard has applied
        everything stored before `read_ms`."""
        self._offers.append((read_ms, floor_ms))
        del self._offers[:-64]
        self._promote()

    def _promote(self) -> None:
        ready = [floor for read, floor in self._offers if read <= self.clear_ms]
        if ready:
            self.timers_until = max(self.timers_until, *ready)
            self._offers = [(r, f) for r, f in self._offers if r > self.clear_ms]

    def _caught_up(self, asked_ms: int) -> None:
        self.clear_ms = max(self.clear_ms, asked_ms)
        self._promote()
        self._on_caught_up(self.shard.index)

    async def _apply(self, messages: list[Any]) -> None:
        queued: list[asyncio.Future[Any]] = []
        last = last_queued = 0
        for message in messages:
            position = message.metadata.sequence.stream
            if position <= self.applied:
                continue
            try:
                entry = LogEntry.decode(message.data)
                before = len(queued)
                await self._route(entry, position, queued)
                if len(queued) > before:
                    last_queued = position
            except ShardClosed:  # being dropped: the next holder resumes from the file
                raise
            except PulsewireError as err:  # a bad entry is skipped, never retried forever
                log.error("shard %d: log entry %d skipped: %s", self.shard.index, position, err)
            last = position
        if last and last_queued != last:
            queued.append(self.shard.enqueue_position(last))
        await asyncio.gather(*queued)
        self.applied = max(self.applied, last)

    async def _route(self, entry: LogEntry, position: int,
                     queued: list[asyncio.Future[Any]]) -> None:
        if entry.kind == OP:
            await asyncio.gather(*queued)  # what came before the call is in the file first
            await self._operate(entry)
            queued.append(self.shard.enqueue_position(position))
        elif entry.kind in (ANON, CLAIM):
            to = route(entry.key, entry.device_key, await self._alias(entry.device_key))
            if not to.claims:
                await self._to(to.key, entry, None, position, queued)
                return
            await asyncio.gather(*queued)  # the device's queued batches are part of its history
            history = await self.shard.anonymous_state(entry.device_key)
            dedup = tuple(await self.shard.dedup_of(entry.device)) if history else ()
            await self._to(to.key, entry, history, position, queued, dedup)
            queued.append(self.shard.enqueue_link(link_kind(history), entry.device_key, to.key,
                                                  position))
            self._aliases[entry.device_key] = to.key
        else:
            await self._to(entry.key, entry, entry.merge, position, queued, entry.dedup)

    async def _to(self, key: str, entry: LogEntry, merge: bytes | None, position: int,
                  queued: list[asyncio.Future[Any]],
                  dedup: tuple[tuple[int, int, int], ...] = ()) -> None:
        target = shard_of(key, self._count)
        if target != self.shard.index:
            await self._log.publish(target, entry.passed_on(key, merge, dedup), "f")
            return
        events, identity = await self._contents(entry)
        queued.append(self.shard.enqueue_ingest(
            key, events, device=entry.device, seq=entry.seq, identity=identity,
            merge_from=merge, at_ms=entry.at_ms, position=position, dedup_from=list(dedup)))

    async def _contents(self, entry: LogEntry) -> tuple[list[Event], Identity | None]:
        if not entry.batch:
            return [await self._with_send(e) for e in entry.events], None
        batch = batch_pb2.Batch.FromString(entry.batch)
        site = self._settings.site(batch.site_key)
        if site is None:
            raise InvalidEntry(f"site {batch.site_key!r} is not configured on this node")
        decoded = decode_batch(batch, site, self._settings.ingest, entry.at_ms)
        return decoded.events, decoded.identity

    async def _with_send(self, event: Event) -> Event:
        """An open or a click names its message; the sequence and step come from this
        shard's outbox, as in the embedded server."""
        if event.name not in _FEEDBACK or "sequence" in event.props:
            return event
        sent_by = await self.shard.message_step(str(event.props.get("message", "")))
        if sent_by is None:
            return event
        return event._replace(props={**event.props, "sequence": sent_by[0], "step": sent_by[1]})

    async def _operate(self, entry: LogEntry) -> None:
        """An operator's call on this shard, as the embedded server does it on all of them. An
        erase by address or id that finds users here is sent on by their keys, so the other
        shards remove the users' aliases and dedup keys too."""
        here = ShardOperations([self.shard], self._clock.now_ms)
        if entry.key in ("suppress", "unsuppress"):
            await here.suppress(entry.device, entry.key == "suppress")
        elif entry.key == "erase":
            found = [user.key for _, user in await find_users([self.shard], entry.device)]
            await here.erase(entry.device)
            self._aliases.clear()
            for key in found:
                if key != entry.device:
                    await publish_op(self._log, self._count, "erase", key,
                                     at_ms=entry.at_ms, skip=self.shard.index)
        else:
            raise InvalidEntry(f"unknown operator call {entry.key!r}")

    async def _alias(self, device_key: str) -> str | None:
        if device_key not in self._aliases:
            self._aliases[device_key] = await self.shard.alias_of(device_key)
        return self._aliases[device_key]


async def _unsubscribe(subscription: Any) -> None:
    with contextlib.suppress(NatsError, asyncio.TimeoutError):
        await subscription.unsubscribe()

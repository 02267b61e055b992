"""What an operator's calls do (the Admin service, server/rpc/admin.py, is their gRPC face):
look a user up, suppress or lift an address, erase a user, read the counters and what they say
of each sequence (server/measure/), reload.

Suppress and erase change every shard. `ShardOperations` does them on the shards at hand: in
one process that is all of them (it is the mode's `OperatorReach`); in the distributed mode the
call goes through the log to every shard's owner (server/cluster/), which does it with a
`ShardOperations` over its one shard.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from collector.gen.pulsewire.v1 import admin_pb2
from server.engine import Event, Rules, decode_state
from server.measure.report import report
from server.stats_wire import to_message
from server.storage.router import keys_for, shard_of
from server.storage.shard import Shard, Shards, UserRow

__all__ = ["Counters", "OperatorActions", "OperatorReach", "ShardOperations", "find_users",
           "sum_counters"]


Counters = dict[tuple[str, int, str], int]  # (sequence, step, counter) -> n, over shards


class OperatorReach(Protocol):
    """How an operator's call reaches the shards."""

    async def suppress(self, address: str, suppressed: bool) -> None: ...

    async def erase(self, who: str) -> int:
        """Rows removed (0 where the shards' owners do it later)."""
        ...

    async def counters(self) -> Counters:
        """Every shard's stats counters, summed: all shards, not only those held here."""
        ...


async def find_users(shards: Shards, who: str) -> list[tuple[Shard, UserRow]]:
    """Users named by a routing key, a user id, an email or a device id, on `shards`."""
    if "@" in who:  # every shard at once: each looks it up by index
        held = list(shards)
        by_shard = await asyncio.gather(*(shard.users_by_email(who) for shard in held))
        return [(shard, row) for shard, rows in zip(held, by_shard, strict=True) for row in rows]
    found = []
    for key in keys_for(who):
        shard = shards[shard_of(key, len(shards))]
        if (row := await shard.user(key)) is not None:
            found.append((shard, row))
    return found


class ShardOperations:
    """Suppress and erase on the shards given."""

    def __init__(self, shards: Shards, now_ms: Callable[[], int]) -> None:
        self._shards = shards
        self._now_ms = now_ms

    async def suppress(self, address: str, suppressed: bool) -> None:
        now = self._now_ms()
        for shard in self._shards:
            await shard.set_suppression(address, suppressed)
        for shard, user in await find_users(self._shards, address):
            events = [Event("unsubscribe", now)] if suppressed else [
                Event("resubscribe", now), Event("identify", now, {"verified": user.verified})]
            await shard.ingest(user.key, events)

    async def erase(self, who: str) -> int:
        found = await find_users(self._shards, who)
        keys = [user.key for _, user in found] or [who]
        emails = [user.email for _, user in found if user.email] + ([who] if "@" in who else [])
        return sum([await shard.erase(keys, emails) for shard in self._shards])

    async def counters(self) -> Counters:
        return await sum_counters(self._shards)


async def sum_counters(shards: Shards) -> Counters:
    totals: Counters = {}
    for shard in shards:
        for sequence, step, counter, n in await shard.stats():
            totals[(sequence, step, counter)] = totals.get((sequence, step, counter), 0) + n
    return totals


class OperatorActions:
    """The operator's calls, given the running app's pieces."""

    def __init__(self, shards: Shards, reach: OperatorReach,
                 reload: Callable[[], list[str]], now_ms: Callable[[], int],
                 rules: Callable[[], Rules]) -> None:
        self.shards = shards
        self.reach = reach
        self.reload = reload
        self.now_ms = now_ms
        self.rules = rules  # of the running set

    async def user_view(self, who: str) -> admin_pb2.UserView:
        found = await find_users(self.shards, who)
        if not found:
            raise LookupError(f"no user {who!r}")
        shard, user = found[0]
        engine_state = decode_state(user.key, user.state)
        view = admin_pb2.UserView(user_id=user.user_id or "", email=user.email or "",
                                  email_verified=user.verified, timezone=user.timezone or "",
                                  suppressed=engine_state.block in ("unsubscribed", "bounced"))
        view.devices.extend(await shard.devices_of(user.key))
        names = self.rules().descriptions
        for tracker, stamps in sorted(engine_state.signals.items()):
            view.aggregates.add(signal=names.get(tracker, f"signal {tracker} (no longer loaded)"),
                                at_ms=stamps)
        for inst in engine_state.instances:
            view.instances.add(sequence=inst.sequence, key=inst.key, step=inst.step,
                               due_ms=inst.due_ms or 0)
        for sent in await shard.recent_sends(user.key):
            view.sends.add(sequence=sent.sequence, template=sent.template, at_ms=sent.at_ms,
                           status=sent.status, reason=sent.reason)
        return view

    async def suppress(self, email: str, suppressed: bool) -> None:
        await self.reach.suppress(email.strip().lower(), suppressed)

    async def erase(self, who: str) -> int:
        """Rows removed (0 in the distributed mode, where every shard's owner does it)."""
        return await self.reach.erase(who)

    async def stats(self) -> admin_pb2.StatsResponse:
        """Every sequence's counters, rates and comparisons (server/measure/report.py)."""
        return to_message(report(await self.reach.counters(), self.rules()))

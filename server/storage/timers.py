"""Each user of a shard has at most one timer: the engine's next deadline for them. The shard
keeps it in the user's row (`due_ms`, indexed) and here, in a heap whose superseded entries
are skipped lazily, so the timer task always knows the earliest due moment."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Awaitable, Callable

from server.clock import Clock
from server.errors import ShardClosed

__all__ = ["HELD_TIMER_POLL_S", "UserTimers"]

HELD_TIMER_POLL_S = 0.02


class UserTimers:
    def __init__(self) -> None:
        self._due: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        self.changed = asyncio.Event()  # set when the earliest due moment may have moved

    def set(self, key: str, due: int | None) -> None:
        """The user's timer is due at `due` now (None: none)."""
        if due is None:
            self._due.pop(key, None)
            return
        if self._due.get(key) == due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, key))
        if self._heap[0] == (due, key):
            self.changed.set()

    def earliest(self) -> int | None:
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # superseded
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: int) -> list[tuple[str, int]]:
        """Every (user, due) whose timer is due by `now`, taken off."""
        taken = []
        while (due := self.earliest()) is not None and due <= now:
            _, key = heapq.heappop(self._heap)
            del self._due[key]
            taken.append((key, due))
        return taken

    async def run(self, clock: Clock, fire_to: Callable[[int], int],
                  fire: Callable[[], Awaitable[object]], closing: Callable[[], bool]) -> None:
        """The shard's timer task: sleep until the earliest timer is due (or another becomes
        the earliest), then `fire` (the writer fires every timer due); `fire_to(now)` says how
        far timers may fire (held back in the distributed mode while a log replays)."""
        while not closing():
            due = self.earliest()
            self.changed.clear()
            if due is None:
                await self.changed.wait()
                continue
            now = clock.now_ms()
            if due <= now and due > fire_to(now):  # held back: look again shortly
                await asyncio.sleep(HELD_TIMER_POLL_S)
                continue
            if due > now:
                sleeper = asyncio.ensure_future(clock.sleep_until(due))
                changed = asyncio.ensure_future(self.changed.wait())
                await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
                for task in (sleeper, changed):
                    task.cancel()
                continue
            try:
                await fire()
            except ShardClosed:
                return
            except Exception:  # logged by the writer; try again on the next wake
                await asyncio.sleep(0.1)

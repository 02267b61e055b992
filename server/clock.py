"""Clocks: the one place server code learns the time, so tests can replay days in milliseconds.

`SystemClock` is the wall clock. `ManualClock` moves only when told (`advance`, `set`), and
wakes whatever sleeps until an instant it has reached; tests use it to skip time instead of
sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    def now_ms(self) -> int: ...

    async def sleep_until(self, at_ms: int) -> None: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep_until(self, at_ms: int) -> None:
        delay_ms = at_ms - self.now_ms()
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)


class ManualClock:
    def __init__(self, start_ms: int) -> None:
        self._now_ms = start_ms
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now_ms(self) -> int:
        return self._now_ms

    async def sleep_until(self, at_ms: int) -> None:
        if at_ms <= self._now_ms:
            await asyncio.sleep(0)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (at_ms, next(self._order), waiter))
        await waiter

    def advance(self, ms: int) -> None:
        self.set(self._now_ms + ms)

    def set(self, now_ms: int) -> None:
        self._now_ms = max(self._now_ms, now_ms)
        while self._sleepers and self._sleepers[0][0] <= self._now_ms:
            _, _, waiter = heapq.heappop(self._sleepers)
            if not waiter.done():
                waiter.set_result(None)

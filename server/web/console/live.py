"""What the console's Live page and the overview's events per minute read: the last events the
shards applied, as they commit (ShardObserver.applied), kept in memory.

The feed keeps the last CAPACITY events (their properties cut short, every value a string) and
a count of events per minute for the last hour. Subscribers (the server-sent events stream of
the Live page) each get a bounded queue; one that falls behind loses the oldest entries, never
slows the shards.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from server.storage.bookkeeping import Seen

__all__ = ["CAPACITY", "LiveEntry", "LiveFeed"]

CAPACITY = 200
MINUTES = 60
_PROPS_SHOWN = 12
_VALUE_CHARS = 120
_QUEUE = 500


@dataclass(frozen=True, slots=True)
class LiveEntry:
    number: int  # rises by one per event: the SSE id
    user_key: str
    name: str
    at_ms: int
    props: tuple[tuple[str, str], ...]
    moved: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"number": self.number, "user": self.user_key, "event": self.name,
                "at_ms": self.at_ms, "props": dict(self.props), "moved": list(self.moved)}


class LiveFeed:
    def __init__(self, now_ms: Callable[[], int]) -> None:
        self._now_ms = now_ms
        self._entries: deque[LiveEntry] = deque(maxlen=CAPACITY)
        self._numbers = itertools.count(1)
        self._minutes: deque[tuple[int, int]] = deque(maxlen=MINUTES)  # (minute, events)
        self._subscribers: set[asyncio.Queue[LiveEntry]] = set()

    def applied(self, seen: Sequence[Seen]) -> None:
        """A committed group's events (called on the shard's loop, after COMMIT)."""
        if not seen:
            return
        minute = self._now_ms() // 60_000
        if self._minutes and self._minutes[-1][0] == minute:
            self._minutes[-1] = (minute, self._minutes[-1][1] + len(seen))
        else:
            self._minutes.append((minute, len(seen)))
        for item in seen:
            entry = LiveEntry(next(self._numbers), item.user_key, item.name, item.at_ms,
                              _shown(item.props), item.moved)
            self._entries.append(entry)
            for queue in self._subscribers:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(entry)

    def recent(self, limit: int = CAPACITY) -> list[LiveEntry]:
        """The last events, newest first."""
        return list(itertools.islice(reversed(self._entries), limit))

    def per_minute(self) -> list[int]:
        """Events applied in each of the last 60 minutes, oldest first (this one last)."""
        now = self._now_ms() // 60_000
        counts = dict(self._minutes)
        return [counts.get(minute, 0) for minute in range(now - MINUTES + 1, now + 1)]

    def subscribe(self) -> asyncio.Queue[LiveEntry]:
        queue: asyncio.Queue[LiveEntry] = asyncio.Queue(_QUEUE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[LiveEntry]) -> None:
        self._subscribers.discard(queue)


def _shown(props: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((str(k)[:_VALUE_CHARS], str(v)[:_VALUE_CHARS])
                 for k, v in itertools.islice(sorted(props.items()), _PROPS_SHOWN))

"""A shard's typed rows: reads through the shard's read connection (WAL: they see the last
commit and never wait for the writer), and the row writes no engine state depends on (outbox
marks, an operator's suppression), which go through the writer like everything else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import aiosqlite

from server.clock import Clock
from server.errors import ShardClosed
from server.storage import statements as sql
from server.storage.statements import OutboxRow, SendRow, UserRow

__all__ = ["ShardRows"]


class ShardRows:
    index: int
    _reader: aiosqlite.Connection | None
    _clock: Clock

    async def _write(self, apply: Callable[[aiosqlite.Connection], Awaitable[Any]]) -> None:
        raise NotImplementedError  # the writer's: server/storage/shard.py

    async def finish_outbox(self, row: OutboxRow, status: str, error: str | None) -> None:
        """The row is done: `sent`, `suppressed` or `dead` (with why)."""
        await self._write(sql.outbox_finished(row.id, row.sequence, row.step, status, error,
                                              self._clock.now_ms()))

    async def retry_outbox(self, row: OutboxRow, attempts: int, due_ms: int, error: str) -> None:
        await self._write(sql.outbox_retry(row.id, attempts, due_ms, error))

    async def defer_outbox(self, row: OutboxRow, due_ms: int, error: str) -> None:
        """Try the row again at `due_ms` without counting an attempt."""
        await self._write(sql.outbox_deferred(row.id, due_ms, error))

    async def set_suppression(self, address: str, suppressed: bool) -> None:
        """An operator's suppression of an address, or its lifting."""
        await self._write(sql.suppression_set(address, suppressed, self._clock.now_ms()))


    async def read(self, query: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        """Any query, for tests and tools: the server itself uses the typed reads below."""
        async with self._reading().execute(query, tuple(params)) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    def _reading(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise ShardClosed(f"shard {self.index} is closed")
        return self._reader

    async def log_position(self) -> int:
        """The last log sequence committed to this file (0: none)."""
        return await sql.log_position(self._reading())

    async def anonymous_state(self, device_key: str) -> bytes | None:
        """The committed engine state of an anonymous device profile, if there is one."""
        return await sql.anonymous_state(self._reading(), device_key)

    async def alias_of(self, device_key: str) -> str | None:
        return await sql.alias_of(self._reading(), device_key)

    async def due_outbox(self, now_ms: int, limit: int) -> list[OutboxRow]:
        return await sql.due_outbox(self._reading(), now_ms, limit, self.index)

    async def next_outbox_due(self) -> int | None:
        return await sql.next_outbox_due(self._reading())

    async def message_step(self, message_key: str) -> tuple[str, int] | None:
        return await sql.message_step(self._reading(), message_key)

    async def is_suppressed(self, email: str) -> bool:
        return await sql.is_suppressed(self._reading(), email)

    async def profile(self, user_key: str) -> tuple[str, dict[str, str]]:
        return await sql.profile(self._reading(), user_key)

    async def users_by_email(self, email: str) -> list[UserRow]:
        return await sql.users_by_email(self._reading(), email)

    async def user(self, key: str) -> UserRow | None:
        return await sql.user_by_key(self._reading(), key)

    async def dedup_of(self, device: str) -> list[tuple[int, int, int]]:
        return await sql.dedup_of(self._reading(), device)

    async def devices_of(self, user_key: str) -> list[str]:
        return await sql.devices_of(self._reading(), user_key)

    async def recent_sends(self, user_key: str, limit: int = 50) -> list[SendRow]:
        return await sql.recent_sends(self._reading(), user_key, limit)

    async def stats(self) -> list[tuple[str, int, str, int]]:
        return await sql.stats(self._reading())

    async def daily_stats(self, since_day: int) -> list[tuple[int, str, int, str, int]]:
        return await sql.daily_stats(self._reading(), since_day)

    async def dead_letters(self) -> int:
        return await sql.dead_letters(self._reading())

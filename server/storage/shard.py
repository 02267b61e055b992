"""One shard: one SQLite file, one writer, group commit.

Everything that changes a shard goes through its queue as a typed work item
(server/storage/work.py) and is applied by one writer task: it takes everything waiting (up to
MAX_GROUP items), runs the engine over it on the event loop (the rules of what a decision
writes: server/storage/bookkeeping.py), and writes the result (user states and their next
deadlines, dedup keys, outbox rows, the send log, counters) in one transaction, with the SQL of
server/storage/statements.py; only after COMMIT are the callers answered. So a batch is acked
only once durable, a crash loses nothing acked, and the thread hop of aiosqlite is paid per
group, not per event.

User states are cached in memory (the writer is the only one who changes them, so the cache is
always right); a failed transaction drops the touched users from the cache so they are read
back as committed. Each user has one timer, the engine's next deadline (server/storage/
timers.py); a timer task wakes the writer when the earliest is due, and at start every overdue
timer fires at once. Reads go through a second connection and typed methods.

One item that raises (an engine error on a hostile input) must not fail the others queued with
it: a failed group is rolled back, every user it touched is read back as committed (never a
half-advanced state), and its items are applied again one by one, so only the item at fault
gets the error (counted by `ShardObserver.item_failed`).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import aiosqlite

from server.clock import Clock
from server.engine import Engine, Event, UserState, encode_state
from server.errors import ShardClosed
from server.storage import statements as sql
from server.storage.bookkeeping import Changes, UserRecord, apply_ingest, fire_timer
from server.storage.observing import ShardObserver
from server.storage.rows import ShardRows
from server.storage.schema import PRAGMAS, migrate
from server.storage.statements import OutboxRow, SendRow, UserRow
from server.storage.timers import UserTimers
from server.storage.work import (
    Erase,
    FireTimers,
    Identity,
    Ingest,
    IngestResult,
    Link,
    Position,
    RowWrite,
    Stop,
    WorkItem,
)

__all__ = [
    "MAX_GROUP",
    "Identity",
    "IngestResult",
    "OutboxRow",
    "SendRow",
    "Shard",
    "ShardObserver",
    "Shards",
    "UserRow",
]

log = logging.getLogger("pulsewire.shard")
MAX_GROUP = 1024
SWEEP_EVERY_MS = 60_000
CACHED_USERS = 50_000  # per shard; beyond it the least recently used states are read back
T = TypeVar("T")


class Shards(Protocol):
    """Shards by number: a list in the embedded server; in the distributed mode, the ones this
    process holds (`len` is still the cluster's count, which routing divides by)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Shard]: ...

    def __getitem__(self, index: int, /) -> Shard: ...


class Shard(ShardRows):
    def __init__(self, index: int, path: Path, engine: Callable[[], Engine], clock: Clock, *,
                 dedup_ttl_ms: int, on_outbox: Callable[[int], None] = lambda _s: None,
                 observe: ShardObserver | None = None,
                 timers_until: Callable[[], int] | None = None) -> None:
        self.index = index
        self.path = path
        self._engine = engine  # the running set may be swapped by a reload: ask each time
        self._clock = clock
        self._dedup_ttl_ms = dedup_ttl_ms
        self._on_outbox = on_outbox
        self._observe = observe or ShardObserver()
        self._queue: asyncio.Queue[WorkItem] = asyncio.Queue()
        self._users: dict[str, UserRecord] = {}
        self._timers = UserTimers()
        # How far timers may fire (distributed mode: until every event accepted before then,
        # on any node, has reached this shard; 0 while its log is replayed); None: up to now.
        self._timers_until = timers_until
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._swept_ms = 0
        self._erased: set[str] = set()  # tombstones: d:<device> and erased routing keys

    # ---- life cycle -----------------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(_migrate_file, self.path, self._clock.now_ms())
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        for conn in (self._db, self._reader):
            for pragma in PRAGMAS:
                await conn.execute(pragma)
        for key, due in await sql.due_timers(self._db):
            self._timers.set(key, due)
        self._erased = await sql.erased(self._db)
        self._tasks = [asyncio.create_task(self._write_loop(), name=f"shard-{self.index}-writer"),
                       asyncio.create_task(self._timer_loop(), name=f"shard-{self.index}-timers")]

    async def close(self) -> None:
        """Finish what is queued, then close the file."""
        if self._closing:
            return
        self._closing = True
        self._timers.changed.set()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(Stop(done))
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in (self._db, self._reader):
            if conn is not None:
                await conn.close()
        self._db = self._reader = None

    queue_depth = property(lambda self: self._queue.qsize())

    # ---- changes, through the writer --------------------------------------------------------

    async def ingest(self, user_key: str, events: list[Event], *, device: str = "", seq: int = 0,
                     identity: Identity | None = None, merge_from: bytes | None = None,
                     dedup_from: list[tuple[int, int, int]] | None = None) -> IngestResult:
        """Apply a batch's events for one user; returns once committed (or known duplicate).
        `merge_from`: an anonymous device's engine state to fold into the user first, with
        `dedup_from` its batches' dedup keys. A batch from an erased device, or the server's
        own events (opens, clicks) for an erased user, is acked and dropped."""
        return await self.enqueue_ingest(user_key, events, device=device, seq=seq,
                                         identity=identity, merge_from=merge_from,
                                         dedup_from=dedup_from)

    def enqueue_ingest(self, user_key: str, events: list[Event], *, device: str = "",
                       seq: int = 0, identity: Identity | None = None,
                       merge_from: bytes | None = None, at_ms: int = 0, position: int = 0,
                       dedup_from: list[tuple[int, int, int]] | None = None,
                       ) -> asyncio.Future[IngestResult]:
        """`ingest` for a log consumer: queued now, in call order, applied as of `at_ms` (the
        time the batch was accepted), with the log `position` committed in its transaction."""
        return self._put(lambda f: Ingest(f, user_key, events, device, seq, identity,
                                          merge_from, at_ms, position, dedup_from or []))

    def enqueue_position(self, position: int) -> asyncio.Future[None]:
        """Commit the log `position` (entries that changed nothing here, say forwarded)."""
        return self._put(lambda f: Position(f, position))

    def enqueue_link(self, kind: Literal["alias", "retire"], device_key: str, user_key: str,
                     position: int = 0) -> asyncio.Future[None]:
        """The device now belongs to `user_key`: its later batches (which carry no identity)
        go to the user, after a restart too. `retire` (after its history merged into the user)
        also drops the device's profile. Queued now, in call order; a retire ends its group."""
        return self._put(lambda f: Link(f, kind, device_key, user_key, position))

    async def erase(self, user_keys: list[str], emails: list[str]) -> int:
        """Remove every row of these users and addresses; returns how many rows went."""
        return await self._put(lambda f: Erase(f, user_keys, emails))

    async def _write(self, apply: Callable[[aiosqlite.Connection], Awaitable[Any]]) -> None:
        await self._put(lambda f: RowWrite(f, apply))

    def _put(self, make: Callable[[asyncio.Future[T]], WorkItem]) -> asyncio.Future[T]:
        if self._closing or self._db is None:
            raise ShardClosed(f"shard {self.index} is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(make(future))
        return future

    # ---- the writer -----------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            items = [await self._queue.get()]
            # An erase or a retire ends its group: their rows are written after the group's
            # ingests, so an ingest queued behind one must land in the next group.
            while (len(items) < MAX_GROUP and not self._queue.empty()
                   and not _ends_group(items[-1])):
                items.append(self._queue.get_nowait())
            work = [i for i in items if not isinstance(i, Stop)]
            if work:
                await self._apply_group(work)
            if len(work) < len(items):
                for item in items:
                    if isinstance(item, Stop):
                        item.future.set_result(None)
                return

    async def _apply_group(self, items: Sequence[WorkItem]) -> None:
        assert self._db is not None
        db, now = self._db, self._clock.now_ms()
        started = time.perf_counter()
        changes = Changes(day=now // 86_400_000,
                          seen=[] if self._observe.wants_applied else None)
        results: list[Any] = []
        # Timers due now are taken off the heap once per group (the first FireTimers fires
        # them all), and put back if the group fails, so none is lost.
        fire_to = self._fire_to(now)
        due = self._timers.pop_due(fire_to) if any(
            isinstance(i, FireTimers) for i in items) else []
        try:
            seen = await sql.duplicates(db, [(i.device, i.seq) for i in items
                                             if isinstance(i, Ingest) and i.device])
            await self._load([i.user_key for i in items if isinstance(i, Ingest)]
                             + [key for key, _ in due])
            await db.execute("BEGIN IMMEDIATE")
            for item in items:
                results.append(self._apply_item(item, now, seen, changes, due, fire_to))
                if isinstance(item, FireTimers):
                    due = []
            await self._write_changes(changes, now)
            for i, item in enumerate(items):
                results[i] = await self._write_item(db, item, now, results[i])
            if position := max(i.position for i in items):
                await sql.commit_position(db, position)
            await db.execute("COMMIT")
        except Exception as err:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            for key in changes.users:  # touched, maybe half way: read back as committed
                self._users.pop(key, None)
            for key, due_ms in due:
                self._timers.set(key, due_ms)
            if len(items) > 1:  # find the item at fault: the others commit, each alone
                log.warning("shard %d: a group of %d failed (%s); applying its items one by "
                            "one", self.index, len(items), type(err).__name__)
                for item in items:
                    await self._apply_group([item])
                return
            log.exception("shard %d: %s failed", self.index, type(items[0]).__name__)
            self._observe.item_failed(type(err).__name__)
            if not items[0].future.done():
                items[0].future.set_exception(err)
            return
        self._observe.commit((time.perf_counter() - started) * 1000)
        if changes.seen:
            self._observe.applied(changes.seen)
        for item in items:
            if isinstance(item, Erase):
                self._erased |= item.tombstones
        while len(self._users) > CACHED_USERS:  # all committed: the oldest can be read back
            del self._users[next(iter(self._users))]
        for item, result in zip(items, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)
        if changes.outbox:
            self._on_outbox(self.index)

    def _apply_item(self, item: WorkItem, now: int, seen: dict[tuple[str, int], int],
                    changes: Changes, due: list[tuple[str, int]], fire_to: int) -> Any:
        """The engine's part of an item, on the loop, gathering rows into `changes`."""
        if isinstance(item, FireTimers):
            return self._fire_timers([key for key, _ in due], fire_to, changes)
        if isinstance(item, Link) and item.kind == "retire":
            self._forget(item.device_key, changes)
        elif isinstance(item, Erase):
            for erased in filter(None, item.user_keys):
                self._forget(erased, changes)
        elif isinstance(item, Ingest):
            now = item.at_ms or now
            if self._erased and self._is_erased(item):
                self._observe.erased_dropped()
                return IngestResult(0, False)
            if item.device:
                key = (item.device, item.seq)
                if key in seen:
                    return IngestResult(seen[key], True)
                seen[key] = len(item.events)
                changes.dedup.append((item.device, item.seq, len(item.events),
                                      now + self._dedup_ttl_ms, item.user_key))
            changes.dedup.extend((item.device, seq, n, expires, item.user_key)
                                 for seq, n, expires in item.dedup_from)
            changes.users.add(item.user_key)  # before the pass: a failed one is undone whole
            apply_ingest(self._engine(), item, self._user(item.user_key, now), now, changes)
            return IngestResult(len(item.events), False)
        return None

    async def _write_item(self, db: aiosqlite.Connection, item: WorkItem, now: int,
                          result: Any) -> Any:
        """An item's own rows, after the group's changes; returns its result."""
        if isinstance(item, RowWrite):
            return await item.apply(db)
        if isinstance(item, Erase):
            removed, item.tombstones = await sql.erase_rows(db, item.user_keys, item.emails, now)
            return removed
        if isinstance(item, Link):
            await sql.link(db, item.kind, item.device_key, item.user_key, now)
        return result

    def _is_erased(self, item: Ingest) -> bool:
        """From an erased device; or for an erased user and made by the server (an open, a
        click: a new device with a signed identity is someone starting afresh)."""
        return (f"d:{item.device}" in self._erased
                or (item.user_key in self._erased and item.device[:2] in ("", "m:")))

    def _forget(self, key: str, changes: Changes) -> None:
        self._users.pop(key, None)
        self._timers.set(key, None)
        changes.users.discard(key)

    def _fire_timers(self, keys: list[str], now: int, changes: Changes) -> int:
        engine, fired, wall_ms = self._engine(), 0, self._clock.now_ms()
        for key in keys:
            user = self._users.get(key)
            if user is None:
                continue
            due = engine.next_deadline(user.state)
            if due is not None and due <= now:
                self._observe.timer_lateness(wall_ms - due)
            changes.users.add(key)
            fire_timer(engine, key, user, now, changes)
            fired += 1
        return fired

    async def _write_changes(self, changes: Changes, now: int) -> None:
        assert self._db is not None
        engine, users = self._engine(), []
        for key in changes.users:
            user = self._users[key]
            due = engine.next_deadline(user.state)
            users.append(sql.user_row(key, encode_state(user.state), due, user, now))
            user.stored = True
            self._timers.set(key, due)
        await sql.write_changes(self._db, users, changes)
        if now - self._swept_ms >= SWEEP_EVERY_MS:
            await sql.sweep_dedup(self._db, now)
            self._swept_ms = now

    # ---- users ----------------------------------------------------------------------------

    async def _load(self, keys: list[str]) -> None:
        assert self._db is not None
        missing = sorted({k for k in keys if k not in self._users})
        for key, user in await sql.load_users(self._db, missing):
            self._users[key] = user

    def _user(self, key: str, now: int) -> UserRecord:
        user = self._users.pop(key, None)  # re-inserted: the cache evicts least recent first
        if user is None:
            user = UserRecord(UserState(key), created_ms=now)
        self._users[key] = user
        return user

    # ---- timers ---------------------------------------------------------------------------

    def _fire_to(self, now: int) -> int:
        return now if self._timers_until is None else min(now, self._timers_until())

    async def _timer_loop(self) -> None:
        await self._timers.run(self._clock, self._fire_to, lambda: self._put(FireTimers),
                               lambda: self._closing)


def _ends_group(item: WorkItem) -> bool:
    return isinstance(item, Erase) or (isinstance(item, Link) and item.kind == "retire")


def _migrate_file(path: Path, now_ms: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(conn, now_ms)
    finally:
        conn.close()

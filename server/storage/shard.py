"""One shard: one SQLite file, one writer, group commit.

Everything that changes a shard goes through its queue and is applied by one writer task: it
takes everything waiting (up to MAX_GROUP items), runs the engine over it on the event loop,
and writes the result (user states and their next deadlines, dedup keys, outbox rows, the send
log, counters) in one transaction; only after COMMIT are the callers answered. So a batch is
acked only once durable, a crash loses nothing acked, and the thread hop of aiosqlite is paid
per group, not per event.

User states are cached in memory (the writer is the only one who changes them, so the cache is
always right); a failed transaction drops the touched users from the cache so they are read
back as committed. Each user has one timer, the engine's next deadline, kept in the row
(`due_ms`, indexed) and in a heap here; a timer task wakes the writer when the earliest is due,
and at start every overdue timer fires at once.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

from server.clock import Clock
from server.engine import (
    Action,
    Engine,
    Entered,
    Event,
    Exited,
    Send,
    Suppressed,
    UserState,
    decode_state,
    encode_state,
)
from server.errors import ShardClosed
from server.storage.schema import PRAGMAS, migrate

__all__ = [
    "MAX_GROUP",
    "STATS_UPSERT",
    "Identity",
    "IngestResult",
    "OutboxRow",
    "Shard",
    "ShardObserver",
    "Shards",
]

log = logging.getLogger("pulsewire.shard")
MAX_GROUP = 1024
SWEEP_EVERY_MS = 60_000
HELD_TIMER_POLL_S = 0.02
CACHED_USERS = 50_000  # per shard; beyond it the least recently used states are read back
STATS_UPSERT = ("INSERT INTO stats VALUES (?, ?, ?, ?) ON CONFLICT(sequence, step, counter)"
                " DO UPDATE SET n = n + excluded.n")  # (sequence, step, counter, by how much)
CONVERSION_WINDOW_MS = 7 * 86_400_000  # a purchase this soon after an email credits it
_SUPPRESSING_EVENTS = {"unsubscribe": "unsubscribed", "email_bounce": "bounced"}


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a batch says the user is. `verified`: the site signed the email."""

    email: str | None = None
    verified: bool = False
    user_id: str | None = None
    traits: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    message_key: str
    user_key: str
    email: str
    sequence: str
    step: int
    template: str
    vars: dict[str, Any]
    attempts: int
    due_ms: int
    shard: int


class Shards(Protocol):
    """Shards by number: a list in the embedded server; in the distributed mode, the ones this
    process holds (`len` is still the cluster's count, which routing divides by)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Shard]: ...

    def __getitem__(self, index: int, /) -> Shard: ...


class ShardObserver:
    """What a shard reports as it works; the app passes one that feeds its metrics."""

    def commit(self, elapsed_ms: float) -> None:
        """A group was applied and committed, `elapsed_ms` from start to COMMIT."""

    def timer_lateness(self, late_ms: int) -> None:
        """A timer fired `late_ms` after it was due."""


@dataclass(slots=True)
class _User:
    state: UserState
    email: str | None = None
    verified: bool = False
    user_id: str | None = None
    traits: dict[str, str] = field(default_factory=dict)
    created_ms: int = 0
    stored: bool = False  # a row exists in the file
    last_sent: tuple[str, int, int] | None = None  # (sequence, step, at): a purchase credits it


@dataclass(slots=True)
class _Item:
    """A unit of work for the writer and the future that answers it."""

    kind: str  # ingest, timers, outbox
    future: asyncio.Future[Any]
    user_key: str = ""
    events: list[Event] = field(default_factory=list)
    device: str = ""
    seq: int = 0
    identity: Identity | None = None
    apply: Callable[[aiosqlite.Connection], Awaitable[Any]] | None = None  # outbox updates...
    merge_from: bytes | None = None
    at_ms: int = 0  # when the batch was accepted, if not now (a replayed log entry)
    position: int = 0  # the log sequence this item ends, in distributed mode


@dataclass(slots=True)
class _Changes:
    """Rows one group writes, gathered before the transaction."""

    users: set[str] = field(default_factory=set)
    dedup: list[tuple[str, int, int, int, str]] = field(default_factory=list)
    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    send_log: list[tuple[Any, ...]] = field(default_factory=list)
    stats: dict[tuple[str, int, str], int] = field(default_factory=dict)
    suppress: list[tuple[str, str, int]] = field(default_factory=list)

    def count(self, sequence: str, step: int, counter: str) -> None:
        key = (sequence, step, counter)
        self.stats[key] = self.stats.get(key, 0) + 1


class Shard:
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
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._users: dict[str, _User] = {}
        self._due: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        self._timers_changed = asyncio.Event()
        # How far timers may fire (distributed mode: until every event accepted before then,
        # on any node, has reached this shard; 0 while its log is replayed); None: up to now.
        self._timers_until = timers_until
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._swept_ms = 0

    # ---- life cycle -----------------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(_migrate_file, self.path, self._clock.now_ms())
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        for conn in (self._db, self._reader):
            for pragma in PRAGMAS:
                await conn.execute(pragma)
        async with self._db.execute(
                "SELECT key, due_ms FROM users WHERE due_ms IS NOT NULL") as cursor:
            async for key, due in cursor:
                self._set_due(key, due)
        self._tasks = [asyncio.create_task(self._write_loop(), name=f"shard-{self.index}-writer"),
                       asyncio.create_task(self._timer_loop(), name=f"shard-{self.index}-timers")]

    async def close(self) -> None:
        """Finish what is queued, then close the file."""
        if self._closing:
            return
        self._closing = True
        self._timers_changed.set()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Item("stop", done))
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in (self._db, self._reader):
            if conn is not None:
                await conn.close()
        self._db = self._reader = None

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    # ---- what callers ask for -----------------------------------------------------------

    async def ingest(self, user_key: str, events: list[Event], *, device: str = "", seq: int = 0,
                     identity: Identity | None = None,
                     merge_from: bytes | None = None) -> IngestResult:
        """Apply a batch's events for one user; returns once committed (or known duplicate).
        `merge_from`: an anonymous device's engine state to fold into the user first."""
        return await self.enqueue_ingest(user_key, events, device=device, seq=seq,
                                         identity=identity, merge_from=merge_from)

    def enqueue_ingest(self, user_key: str, events: list[Event], *, device: str = "",
                       seq: int = 0, identity: Identity | None = None,
                       merge_from: bytes | None = None, at_ms: int = 0,
                       position: int = 0) -> asyncio.Future[IngestResult]:
        """`ingest` for a log consumer: queued now, in call order, applied as of `at_ms` (the
        time the batch was accepted), with the log `position` committed in its transaction."""
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self._put(_Item("ingest", future, user_key, events, device, seq, identity,
                            merge_from=merge_from, at_ms=at_ms, position=position))
        return future

    def enqueue_position(self, position: int) -> asyncio.Future[None]:
        """Commit the log `position` (entries that changed nothing here, say forwarded)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._put(_Item("position", future, position=position))
        return future

    async def log_position(self) -> int:
        """The last log sequence committed to this file (0: none)."""
        rows = await self.read("SELECT seq FROM log_position WHERE id = 0")
        return int(rows[0][0]) if rows else 0

    async def anonymous_state(self, device_key: str) -> bytes | None:
        """The committed engine state of an anonymous device profile, if there is one."""
        rows = await self.read("SELECT state FROM users WHERE key = ?", (device_key,))
        return bytes(rows[0][0]) if rows else None

    async def alias_of(self, device_key: str) -> str | None:
        rows = await self.read("SELECT key FROM aliases WHERE alias = ?", (device_key,))
        return str(rows[0][0]) if rows else None

    async def alias(self, device_key: str, user_key: str) -> None:
        """A device with no history of its own now belongs to `user_key`: its later batches
        (which carry no identity) go to the user, after a restart too. Written with the
        group it lands in, without ending it."""
        await self.enqueue_link("alias", device_key, user_key)

    async def retire(self, device_key: str, user_key: str) -> None:
        """After its history merged into `user_key`: drop the device's profile, keep an alias
        so late anonymous batches from it still reach the user."""
        await self.enqueue_link("retire", device_key, user_key)

    def enqueue_link(self, kind: str, device_key: str, user_key: str,
                     position: int = 0) -> asyncio.Future[None]:
        """`alias` or `retire` (the `kind`), queued now in call order."""
        assert kind in ("alias", "retire")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._put(_Item(kind, future, user_key=device_key, device=user_key,
                            position=position))
        return future

    async def write(self, apply: Callable[[aiosqlite.Connection], Awaitable[Any]]) -> Any:
        """Await `apply(conn)` inside the writer's next transaction (outbox updates, erasure).
        It must only write rows; user states are the engine's and change through `ingest`."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._put(_Item("write", future, apply=apply))
        return await future

    async def read(self, query: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        if self._reader is None:
            raise ShardClosed(f"shard {self.index} is closed")
        async with self._reader.execute(query, tuple(params)) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    async def due_outbox(self, now_ms: int, limit: int) -> list[OutboxRow]:
        rows = await self.read(
            "SELECT id, message_key, user_key, email, sequence, step, template, vars, attempts,"
            " due_ms FROM outbox WHERE status = 'queued' AND due_ms <= ? ORDER BY due_ms"
            " LIMIT ?", (now_ms, limit))
        return [OutboxRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8],
                          r[9], self.index) for r in rows]

    async def next_outbox_due(self) -> int | None:
        rows = await self.read("SELECT min(due_ms) FROM outbox WHERE status = 'queued'")
        return rows[0][0] if rows else None

    async def erase(self, user_keys: list[str], emails: list[str]) -> int:
        """Remove every row of these users and addresses; returns how many rows went."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._put(_Item("erase", future, events=[], apply=None,
                              user_key="\x1f".join(user_keys), device="\x1f".join(emails)))
        return await future

    def _put(self, item: _Item) -> None:
        if self._closing or self._db is None:
            raise ShardClosed(f"shard {self.index} is closed")
        self._queue.put_nowait(item)

    # ---- the writer -----------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            items = [await self._queue.get()]
            # An erase or a retire ends its group: their rows are written after the group's
            # ingests, so an ingest queued behind one must land in the next group.
            while (len(items) < MAX_GROUP and not self._queue.empty()
                   and items[-1].kind not in ("erase", "retire")):
                items.append(self._queue.get_nowait())
            stop = [i for i in items if i.kind == "stop"]
            work = [i for i in items if i.kind != "stop"]
            if work:
                await self._apply_group(work)
            if stop:
                for item in stop:
                    item.future.set_result(None)
                return

    async def _apply_group(self, items: list[_Item]) -> None:
        assert self._db is not None
        db, now = self._db, self._clock.now_ms()
        started = time.perf_counter()
        changes = _Changes()
        results: list[Any] = []
        # Timers due now are taken off the heap once per group (the first "timers" item fires
        # them all), and put back if the group fails, so none is lost.
        fire_to = self._fire_to(now)
        due = self._pop_due(fire_to) if any(i.kind == "timers" for i in items) else []
        try:
            seen = await self._duplicates(items)
            await self._load([i.user_key for i in items if i.kind == "ingest"]
                             + [key for key, _ in due])
            await db.execute("BEGIN IMMEDIATE")
            for item in items:
                results.append(self._apply_item(item, now, seen, changes, due, fire_to))
                if item.kind == "timers":
                    due = []
            await self._write_changes(changes, now)
            for i, item in enumerate(items):
                if item.apply is not None:
                    results[i] = await item.apply(db)
                elif item.kind == "erase":
                    results[i] = await _erase_rows(db, item.user_key.split("\x1f"),
                                                   item.device.split("\x1f"))
                elif item.kind == "retire":
                    await db.execute("DELETE FROM users WHERE key = ?", (item.user_key,))
                    await db.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)",
                                     (item.user_key, item.device, now))
            aliases = [(i.user_key, i.device, now) for i in items if i.kind == "alias"]
            if aliases:
                await db.executemany("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)",
                                     aliases)
            position = max(i.position for i in items)
            if position:
                await db.execute("INSERT OR REPLACE INTO log_position VALUES (0, ?)",
                                 (position,))
            await db.execute("COMMIT")
        except Exception as err:
            log.exception("shard %d: group of %d failed", self.index, len(items))
            if db.in_transaction:
                await db.execute("ROLLBACK")
            for key in changes.users:
                self._users.pop(key, None)
            for key, due_ms in due:
                self._set_due(key, due_ms)
            for item in items:
                if not item.future.done():
                    item.future.set_exception(err)
            return
        self._observe.commit((time.perf_counter() - started) * 1000)
        while len(self._users) > CACHED_USERS:  # all committed: the oldest can be read back
            del self._users[next(iter(self._users))]
        for item, result in zip(items, results, strict=True):
            if not item.future.done():
                item.future.set_result(result)
        if changes.outbox:
            self._on_outbox(self.index)

    def _apply_item(self, item: _Item, now: int, seen: dict[tuple[str, int], int],
                    changes: _Changes, due: list[tuple[str, int]], fire_to: int) -> Any:
        if item.kind == "timers":
            return self._fire_timers([key for key, _ in due], fire_to, changes)
        if item.kind == "retire":
            self._users.pop(item.user_key, None)
            self._set_due(item.user_key, None)
            changes.users.discard(item.user_key)
            return None
        if item.kind == "erase":
            for erased in filter(None, item.user_key.split("\x1f")):
                self._users.pop(erased, None)
                self._set_due(erased, None)
                changes.users.discard(erased)
            return None
        if item.kind != "ingest":
            return None
        now = item.at_ms or now
        if item.device:
            key = (item.device, item.seq)
            if key in seen:
                return IngestResult(seen[key], True)
            seen[key] = len(item.events)
            changes.dedup.append((item.device, item.seq, len(item.events),
                                  now + self._dedup_ttl_ms, item.user_key))
        user = self._user(item.user_key, now)
        engine = self._engine()
        actions: list[Action] = []
        if item.merge_from is not None:
            engine.merge(user.state, decode_state(item.user_key, item.merge_from))
        if item.identity is not None:
            _note_identity(user, item.identity)
            wanted = "" if user.verified else "unverified"
            if user.email and user.state.block in (None, "", "unverified") \
                    and user.state.block != wanted:
                at = item.events[0].at_ms if item.events else now
                actions.extend(engine.receive(
                    user.state, Event("identify", at, {"verified": user.verified})))
        for event in item.events:
            if event.name in _SUPPRESSING_EVENTS and user.email:
                changes.suppress.append((user.email.lower(), _SUPPRESSING_EVENTS[event.name], now))
            if event.name in ("email_open", "email_click"):
                self._count_feedback(event, changes)
            elif event.name == "purchase" and user.last_sent is not None:
                sequence, step, sent_ms = user.last_sent
                if 0 <= event.at_ms - sent_ms <= CONVERSION_WINDOW_MS:
                    changes.count(sequence, step, "converted")
                user.last_sent = None
            actions.extend(engine.receive(user.state, event))
        actions.extend(engine.advance(user.state, now))
        self._record(item.user_key, user, actions, now, changes)
        return IngestResult(len(item.events), False)

    def _fire_timers(self, keys: list[str], now: int, changes: _Changes) -> int:
        engine, fired, wall_ms = self._engine(), 0, self._clock.now_ms()
        for key in keys:
            user = self._users.get(key)
            if user is None:
                continue
            due = engine.next_deadline(user.state)
            if due is not None and due <= now:
                self._observe.timer_lateness(wall_ms - due)
            self._record(key, user, engine.advance(user.state, now), now, changes)
            fired += 1
        return fired

    def _record(self, key: str, user: _User, actions: list[Action], now: int,
                changes: _Changes) -> None:
        changes.users.add(key)
        for action in actions:
            if isinstance(action, Send):
                if not user.email:
                    changes.send_log.append((key, action.sequence, action.step, action.template,
                                             action.at_ms, "suppressed", "no_email", None))
                    changes.count(action.sequence, action.step, "suppressed:no_email")
                    continue
                changes.outbox.append((action.message_key, key, user.email, action.sequence,
                                       action.step, action.template,
                                       json.dumps(dict(action.vars), sort_keys=True),
                                       now, now))
                changes.send_log.append((key, action.sequence, action.step, action.template,
                                         action.at_ms, "sent", None, action.message_key))
                changes.count(action.sequence, action.step, "sent")
                user.last_sent = (action.sequence, action.step, action.at_ms)
            elif isinstance(action, Suppressed):
                changes.send_log.append((key, action.sequence, action.step, action.template,
                                         action.at_ms, "suppressed", action.reason, None))
                changes.count(action.sequence, action.step, f"suppressed:{action.reason}")
            elif isinstance(action, Entered):
                changes.count(action.sequence, -1, "entered")
            elif isinstance(action, Exited):
                changes.count(action.sequence, -1, "exited")

    def _count_feedback(self, event: Event, changes: _Changes) -> None:
        sequence, step = event.props.get("sequence"), event.props.get("step")
        if isinstance(sequence, str) and isinstance(step, int):
            changes.count(sequence, step, "opened" if event.name == "email_open" else "clicked")

    async def _write_changes(self, changes: _Changes, now: int) -> None:
        assert self._db is not None
        db, engine = self._db, self._engine()
        rows = []
        for key in changes.users:
            user = self._users[key]
            due = engine.next_deadline(user.state)
            rows.append((key, encode_state(user.state), due, user.email, int(user.verified),
                         user.user_id, json.dumps(user.traits) if user.traits else None,
                         user.state.tz, json.dumps(user.last_sent) if user.last_sent else None,
                         user.created_ms or now, now))
            user.stored = True
            self._set_due(key, due)
        if rows:
            await db.executemany(
                "INSERT INTO users (key, state, due_ms, email, email_verified, user_id, traits,"
                " timezone, last_sent, created_ms, updated_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(key) DO UPDATE SET state=excluded.state, due_ms=excluded.due_ms,"
                " email=excluded.email, email_verified=excluded.email_verified,"
                " user_id=excluded.user_id, traits=excluded.traits, timezone=excluded.timezone,"
                " last_sent=excluded.last_sent, updated_ms=excluded.updated_ms", rows)
        if changes.dedup:
            await db.executemany("INSERT OR IGNORE INTO dedup VALUES (?,?,?,?,?)",
                                 changes.dedup)
        if changes.outbox:
            await db.executemany(
                "INSERT OR IGNORE INTO outbox (message_key, user_key, email, sequence, step,"
                " template, vars, created_ms, due_ms, status) VALUES (?,?,?,?,?,?,?,?,?,'queued')",
                changes.outbox)
        if changes.send_log:
            await db.executemany(
                "INSERT INTO send_log (user_key, sequence, step, template, at_ms, status, reason,"
                " message_key) VALUES (?,?,?,?,?,?,?,?)", changes.send_log)
        if changes.stats:
            await db.executemany(STATS_UPSERT,
                                 [(s, st, c, n) for (s, st, c), n in changes.stats.items()])
        if changes.suppress:
            await db.executemany("INSERT OR IGNORE INTO suppression VALUES (?,?,?)",
                                 changes.suppress)
        if now - self._swept_ms >= SWEEP_EVERY_MS:  # retries older than the TTL are new batches
            await db.execute("DELETE FROM dedup WHERE expires_ms < ?", (now,))
            self._swept_ms = now

    # ---- users and dedup ------------------------------------------------------------------

    async def _duplicates(self, items: list[_Item]) -> dict[tuple[str, int], int]:
        keys = [(i.device, i.seq) for i in items if i.kind == "ingest" and i.device]
        found: dict[tuple[str, int], int] = {}
        for chunk in _chunks(keys, 400):
            clause = " OR ".join("(device = ? AND seq = ?)" for _ in chunk)
            params = [v for key in chunk for v in key]
            for device, seq, accepted in await self._fetch(
                    f"SELECT device, seq, accepted FROM dedup WHERE {clause}", params):
                found[(device, seq)] = accepted
        return found

    async def _load(self, keys: list[str]) -> None:
        missing = sorted({k for k in keys if k not in self._users})
        for chunk in _chunks(missing, 400):
            marks = ",".join("?" * len(chunk))
            for key, state, email, verified, user_id, traits, created, sent in await self._fetch(
                    "SELECT key, state, email, email_verified, user_id, traits, created_ms,"
                    f" last_sent FROM users WHERE key IN ({marks})", chunk):
                self._users[key] = _User(decode_state(key, state), email, bool(verified),
                                         user_id, json.loads(traits) if traits else {},
                                         created, True,
                                         tuple(json.loads(sent)) if sent else None)

    async def _fetch(self, query: str, params: Iterable[Any]) -> list[tuple[Any, ...]]:
        assert self._db is not None
        async with self._db.execute(query, tuple(params)) as cursor:
            return [tuple(row) for row in await cursor.fetchall()]

    def _user(self, key: str, now: int) -> _User:
        user = self._users.pop(key, None)  # re-inserted: the cache evicts least recent first
        if user is None:
            user = _User(UserState(key), created_ms=now)
        self._users[key] = user
        return user

    # ---- timers ---------------------------------------------------------------------------

    def _set_due(self, key: str, due: int | None) -> None:
        if due is None:
            self._due.pop(key, None)
            return
        if self._due.get(key) == due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, key))
        if self._heap[0] == (due, key):
            self._timers_changed.set()

    def _earliest_due(self) -> int | None:
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # superseded
        return self._heap[0][0] if self._heap else None

    def _fire_to(self, now: int) -> int:
        return now if self._timers_until is None else min(now, self._timers_until())

    def _pop_due(self, now: int) -> list[tuple[str, int]]:
        """Every (user, due) whose timer is due by `now`, taken off the heap."""
        taken = []
        while (due := self._earliest_due()) is not None and due <= now:
            _, key = heapq.heappop(self._heap)
            del self._due[key]
            taken.append((key, due))
        return taken

    async def _timer_loop(self) -> None:
        while not self._closing:
            due = self._earliest_due()
            self._timers_changed.clear()
            if due is None:
                await self._timers_changed.wait()
                continue
            now = self._clock.now_ms()
            if due <= now and due > self._fire_to(now):  # held back: look again shortly
                await asyncio.sleep(HELD_TIMER_POLL_S)
                continue
            if due > now:
                sleeper = asyncio.ensure_future(self._clock.sleep_until(due))
                changed = asyncio.ensure_future(self._timers_changed.wait())
                await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
                for task in (sleeper, changed):
                    task.cancel()
                continue
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            try:
                self._put(_Item("timers", future))
                await future
            except ShardClosed:
                return
            except Exception:  # logged by the writer; try again on the next wake
                await asyncio.sleep(0.1)


async def _erase_rows(db: aiosqlite.Connection, keys: list[str], emails: list[str]) -> int:
    keys, emails = [k for k in keys if k], [e.lower() for e in emails if e]
    devices = [k[2:] for k in keys if k.startswith("d:")]
    removed = 0
    for key in keys:
        async with db.execute("SELECT alias FROM aliases WHERE key = ?", (key,)) as cursor:
            devices += [alias[2:] for (alias,) in await cursor.fetchall()]
    statements = [(f"DELETE FROM {table} WHERE {column} = ?", values) for table, column, values in (
        ("users", "key", keys), ("aliases", "key", keys), ("outbox", "user_key", keys),
        ("send_log", "user_key", keys), ("users", "lower(email)", emails),
        ("outbox", "lower(email)", emails), ("suppression", "email", emails),
        ("dedup", "device", devices), ("dedup", "user_key", keys),
    )]
    for statement, values in statements:
        for value in values:
            cursor = await db.execute(statement, (value,))
            removed += max(cursor.rowcount, 0)
    return removed


def _note_identity(user: _User, identity: Identity) -> None:
    if identity.email:
        changed = (user.email or "").lower() != identity.email.lower()
        user.email = identity.email
        user.verified = identity.verified or (user.verified and not changed)
    if identity.user_id:
        user.user_id = identity.user_id
    user.traits.update(identity.traits)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _migrate_file(path: Path, now_ms: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        migrate(conn, now_ms)
    finally:
        conn.close()

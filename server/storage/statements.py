"""Every SQL statement against the shard schema (server/storage/schema.py), in one place.

Writers take the writer's connection inside its transaction; readers take the shard's read
connection (WAL: they see the last commit and never wait for the writer). Nothing outside
server/storage/ writes SQL against a shard file: callers use the shard's typed methods, which
are built on these.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from server.engine import decode_state
from server.storage.bookkeeping import Changes, UserRecord
from server.storage.router import device_of

__all__ = [
    "OutboxRow",
    "SendRow",
    "UserRow",
    "file_log_position",
]

Db = aiosqlite.Connection
_STATS_UPSERT = ("INSERT INTO stats VALUES (?, ?, ?, ?) ON CONFLICT(sequence, step, counter)"
                 " DO UPDATE SET n = n + excluded.n")  # (sequence, step, counter, by how much)
_DAILY_UPSERT = ("INSERT INTO stats_daily VALUES (?, ?, ?, ?, ?)"
                 " ON CONFLICT(day, sequence, step, counter) DO UPDATE SET n = n + excluded.n")
_FEEDBACK_MARK = {  # the email's first open or click, by its message key
    kind: f"UPDATE send_log SET {kind}_ms = ? WHERE message_key = ? AND {kind}_ms IS NULL"
    for kind in ("opened", "clicked")}
_USER_COLUMNS = "key, email, email_verified, user_id, timezone, state"


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


@dataclass(frozen=True, slots=True)
class UserRow:
    """A user as an operator sees it."""

    key: str
    email: str | None
    verified: bool
    user_id: str | None
    timezone: str | None
    state: bytes


@dataclass(frozen=True, slots=True)
class SendRow:
    sequence: str
    template: str
    at_ms: int
    status: str
    reason: str
    opened_ms: int | None = None
    clicked_ms: int | None = None


async def _rows(db: Db, query: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
    async with db.execute(query, tuple(params)) as cursor:
        return [tuple(row) for row in await cursor.fetchall()]


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# ---- the writer's group ---------------------------------------------------------------------

async def due_timers(db: Db) -> list[tuple[str, int]]:
    """(user, due) of every user with a timer, read at open."""
    return [(k, d) for k, d in await _rows(db, "SELECT key, due_ms FROM users"
                                                " WHERE due_ms IS NOT NULL")]


async def duplicates(db: Db, keys: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """Which (device, seq) keys were applied before, with how many events they had."""
    found: dict[tuple[str, int], int] = {}
    for chunk in _chunks(keys, 400):
        clause = " OR ".join("(device = ? AND seq = ?)" for _ in chunk)
        params = [v for key in chunk for v in key]
        for device, seq, accepted in await _rows(
                db, f"SELECT device, seq, accepted FROM dedup WHERE {clause}", params):
            found[(device, seq)] = accepted
    return found


async def load_users(db: Db, keys: list[str]) -> list[tuple[str, UserRecord]]:
    found = []
    for chunk in _chunks(keys, 400):
        marks = ",".join("?" * len(chunk))
        for key, state, email, verified, user_id, traits, created in await _rows(
                db, "SELECT key, state, email, email_verified, user_id, traits, created_ms"
                    f" FROM users WHERE key IN ({marks})", chunk):
            found.append((key, UserRecord(
                decode_state(key, state), email, bool(verified), user_id,
                json.loads(traits) if traits else {}, created, True)))
    return found


async def write_changes(db: Db, users: list[tuple[Any, ...]], changes: Changes) -> None:
    """The rows a group gathered; `users` are full user rows (see `user_row`)."""
    if users:
        await db.executemany(
            "INSERT INTO users (key, state, due_ms, email, email_verified, user_id, traits,"
            " timezone, created_ms, updated_ms) VALUES (?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(key) DO UPDATE SET state=excluded.state, due_ms=excluded.due_ms,"
            " email=excluded.email, email_verified=excluded.email_verified,"
            " user_id=excluded.user_id, traits=excluded.traits, timezone=excluded.timezone,"
            " updated_ms=excluded.updated_ms", users)
    if changes.dedup:
        await db.executemany("INSERT OR IGNORE INTO dedup VALUES (?,?,?,?,?)", changes.dedup)
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
        await db.executemany(_STATS_UPSERT,
                             [(s, st, c, n) for (s, st, c), n in changes.stats.items()])
        await db.executemany(_DAILY_UPSERT, [(changes.day, s, st, c, n)
                                             for (s, st, c), n in changes.stats.items()])
    for message, kind, at_ms in changes.feedback:
        await db.execute(_FEEDBACK_MARK[kind], (at_ms, message))
    if changes.suppress:
        await db.executemany("INSERT OR IGNORE INTO suppression VALUES (?,?,?)",
                             changes.suppress)


def user_row(key: str, state: bytes, due: int | None, user: UserRecord,
             now: int) -> tuple[Any, ...]:
    return (key, state, due, user.email, int(user.verified), user.user_id,
            json.dumps(user.traits) if user.traits else None, user.state.tz,
            user.created_ms or now, now)


async def sweep_dedup(db: Db, now: int) -> None:
    """Dedup keys past their TTL go: a retry older than that is a new batch."""
    await db.execute("DELETE FROM dedup WHERE expires_ms < ?", (now,))


async def link(db: Db, kind: str, device_key: str, user_key: str, now: int) -> None:
    if kind == "retire":
        await db.execute("DELETE FROM users WHERE key = ?", (device_key,))
    await db.execute("INSERT OR REPLACE INTO aliases VALUES (?, ?, ?)",
                     (device_key, user_key, now))


async def commit_position(db: Db, position: int) -> None:
    await db.execute("INSERT OR REPLACE INTO log_position VALUES (0, ?)", (position,))


async def erase_rows(db: Db, keys: list[str], emails: list[str],
                     now: int) -> tuple[int, set[str]]:
    """Remove every row of these users and addresses, leaving tombstones for the keys and for
    every device that reached them here (`d:<device>`); returns how many rows went, and the
    tombstones."""
    keys, emails = [k for k in keys if k], [e.lower() for e in emails if e]
    devices = {d for k in keys if (d := device_of(k)) is not None}
    removed = 0
    for key in keys:
        for (alias,) in await _rows(db, "SELECT alias FROM aliases WHERE key = ?", (key,)):
            if (device := device_of(alias)) is not None:
                devices.add(device)
        devices.update(d for (d,) in await _rows(
            db, "SELECT DISTINCT device FROM dedup WHERE user_key = ? AND device NOT LIKE 'm:%'",
            (key,)))
    statements = [(f"DELETE FROM {table} WHERE {column} = ?", values) for table, column, values in (
        ("users", "key", keys), ("aliases", "key", keys), ("outbox", "user_key", keys),
        ("send_log", "user_key", keys), ("users", "lower(email)", emails),
        ("outbox", "lower(email)", emails), ("suppression", "email", emails),
        ("dedup", "device", sorted(devices)), ("dedup", "user_key", keys),
    )]
    for statement, values in statements:
        for value in values:
            cursor = await db.execute(statement, (value,))
            removed += max(cursor.rowcount, 0)
    # The tombstones are what keep them erased: a replay of an old batch, or anything new
    # from one of their devices, is dropped (the dedup keys that caught replays are gone).
    tombstones = {*keys, *(f"d:{d}" for d in devices)}
    await db.executemany("INSERT OR REPLACE INTO erased VALUES (?, ?)",
                         [(name, now) for name in sorted(tombstones)])
    return removed, tombstones


async def erased(db: Db) -> set[str]:
    """Every tombstone of the file (read at open)."""
    return {name for (name,) in await _rows(db, "SELECT name FROM erased")}


async def carry_dedup(db: Db, rows: list[tuple[str, int, int, int, str]]) -> None:
    """Dedup keys of a device's batches, carried to the user its history merged into."""
    await db.executemany("INSERT OR IGNORE INTO dedup VALUES (?,?,?,?,?)", rows)


# ---- outbox marks (the dispatcher's) --------------------------------------------------------

def outbox_finished(row_id: int, sequence: str, step: int, status: str, error: str | None,
                    now: int) -> Any:
    """The row is done: sent, suppressed or dead (the last two counted for its step)."""
    async def apply(db: Db) -> None:
        await db.execute("UPDATE outbox SET status = ?, attempts = attempts + 1,"
                         " last_error = ?, sent_ms = ? WHERE id = ? AND status = 'queued'",
                         (status, error, now if status == "sent" else None, row_id))
        if status != "sent":
            await db.execute(_STATS_UPSERT, (sequence, step, status, 1))
    return apply


def outbox_retry(row_id: int, attempts: int, due_ms: int, error: str) -> Any:
    """A failed attempt: counted, tried again at `due_ms`."""
    async def apply(db: Db) -> None:
        await db.execute("UPDATE outbox SET attempts = ?, due_ms = ?, last_error = ?"
                         " WHERE id = ? AND status = 'queued'", (attempts, due_ms, error, row_id))
    return apply


def outbox_deferred(row_id: int, due_ms: int, error: str) -> Any:
    """Not an attempt (a claim that could not be asked): again at `due_ms`, uncounted."""
    async def apply(db: Db) -> None:
        await db.execute("UPDATE outbox SET due_ms = ?, last_error = ? WHERE id = ?"
                         " AND status = 'queued'", (due_ms, error, row_id))
    return apply


def suppression_set(address: str, suppressed: bool, now: int) -> Any:
    """An operator suppresses an address, or lifts its suppression."""
    async def apply(db: Db) -> None:
        if suppressed:
            await db.execute("INSERT OR REPLACE INTO suppression VALUES (?, 'operator', ?)",
                             (address, now))
        else:
            await db.execute("DELETE FROM suppression WHERE email = ?", (address,))
    return apply


# ---- reads ----------------------------------------------------------------------------------

async def due_outbox(db: Db, now_ms: int, limit: int, shard: int) -> list[OutboxRow]:
    rows = await _rows(
        db, "SELECT id, message_key, user_key, email, sequence, step, template, vars, attempts,"
            " due_ms FROM outbox WHERE status = 'queued' AND due_ms <= ? ORDER BY due_ms"
            " LIMIT ?", (now_ms, limit))
    return [OutboxRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8], r[9],
                      shard) for r in rows]


async def next_outbox_due(db: Db) -> int | None:
    rows = await _rows(db, "SELECT min(due_ms) FROM outbox WHERE status = 'queued'")
    return rows[0][0] if rows else None


async def message_step(db: Db, message_key: str) -> tuple[str, int] | None:
    """The sequence and step that sent a message."""
    rows = await _rows(db, "SELECT sequence, step FROM outbox WHERE message_key = ?",
                       (message_key,))
    return (str(rows[0][0]), int(rows[0][1])) if rows else None


async def is_suppressed(db: Db, email: str) -> bool:
    return bool(await _rows(db, "SELECT 1 FROM suppression WHERE email = ?", (email.lower(),)))


async def profile(db: Db, user_key: str) -> tuple[str, dict[str, str]]:
    """A user's id and traits, for their emails ("" and {} when unknown)."""
    rows = await _rows(db, "SELECT user_id, traits FROM users WHERE key = ?", (user_key,))
    user_id, traits = rows[0] if rows else (None, None)
    return user_id or "", json.loads(traits) if traits else {}


async def log_position(db: Db) -> int:
    rows = await _rows(db, "SELECT seq FROM log_position WHERE id = 0")
    return int(rows[0][0]) if rows else 0


async def anonymous_state(db: Db, device_key: str) -> bytes | None:
    rows = await _rows(db, "SELECT state FROM users WHERE key = ?", (device_key,))
    return bytes(rows[0][0]) if rows else None


async def alias_of(db: Db, device_key: str) -> str | None:
    rows = await _rows(db, "SELECT key FROM aliases WHERE alias = ?", (device_key,))
    return str(rows[0][0]) if rows else None


async def users_by_email(db: Db, email: str) -> list[UserRow]:
    return [UserRow(k, e, bool(v), u, tz, s) for k, e, v, u, tz, s in await _rows(
        db, f"SELECT {_USER_COLUMNS} FROM users WHERE lower(email) = ?", (email.lower(),))]


async def user_by_key(db: Db, key: str) -> UserRow | None:
    rows = await _rows(db, f"SELECT {_USER_COLUMNS} FROM users WHERE key = ?", (key,))
    return UserRow(rows[0][0], rows[0][1], bool(rows[0][2]), rows[0][3], rows[0][4],
                   rows[0][5]) if rows else None


async def dedup_of(db: Db, device: str) -> list[tuple[int, int, int]]:
    """(seq, events, expires) of the device's batches applied here."""
    return [(q, a, x) for q, a, x in await _rows(
        db, "SELECT seq, accepted, expires_ms FROM dedup WHERE device = ?", (device,))]


async def devices_of(db: Db, user_key: str) -> list[str]:
    """The devices whose batches reached the user (not the feedback of messages)."""
    return [d for (d,) in await _rows(
        db, "SELECT DISTINCT device FROM dedup WHERE user_key = ? AND device NOT LIKE 'm:%'"
            " ORDER BY device", (user_key,))]


async def recent_sends(db: Db, user_key: str, limit: int) -> list[SendRow]:
    return [SendRow(*row) for row in await _rows(
        db, "SELECT sequence, template, at_ms, status, coalesce(reason, ''), opened_ms,"
            " clicked_ms FROM send_log WHERE user_key = ? ORDER BY at_ms DESC LIMIT ?",
        (user_key, limit))]


async def stats(db: Db) -> list[tuple[str, int, str, int]]:
    """(sequence, step, counter, n) of every counter."""
    return [(s, st, c, n) for s, st, c, n in await _rows(
        db, "SELECT sequence, step, counter, n FROM stats")]


async def daily_stats(db: Db, since_day: int) -> list[tuple[int, str, int, str, int]]:
    """(day, sequence, step, counter, n) of every day from `since_day` on."""
    return [(d, s, st, c, n) for d, s, st, c, n in await _rows(
        db, "SELECT day, sequence, step, counter, n FROM stats_daily WHERE day >= ?",
        (since_day,))]


async def dead_letters(db: Db) -> int:
    """Emails given up on after every attempt."""
    return int((await _rows(db, "SELECT count(*) FROM outbox WHERE status = 'dead'"))[0][0])


def file_log_position(path: Path) -> int:
    """The log position a shard file holds (-1: no file, 0: never fed from the log), read
    from the file itself (a snapshot's copy)."""
    if not path.exists():
        return -1
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        try:
            row = conn.execute("SELECT seq FROM log_position WHERE id = 0").fetchone()
        except sqlite3.OperationalError:  # an older schema: no position table yet
            return 0
    return int(row[0]) if row else 0

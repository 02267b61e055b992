"""The shard file's schema, as numbered migrations recorded in the file itself.

Each shard is one SQLite file. `migrate(conn)` applies, in order and each in its own
transaction, every migration the file has not recorded yet, so an old file opened by a newer
server is brought forward and a current one is left alone. Migrations are append-only: a
released one is never edited, a change is a new number.
"""

from __future__ import annotations

import sqlite3

__all__ = ["MIGRATIONS", "PRAGMAS", "migrate", "schema_version"]

# WAL lets readers work beside the one writer; NORMAL is durable across process crashes
# (a power cut may lose the last commits, never corrupt the file).
PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)

MIGRATIONS: tuple[tuple[str, str], ...] = (
    ("users, aliases, dedup, outbox, send log, stats, suppression", """
        CREATE TABLE users (
            key TEXT PRIMARY KEY,          -- routing key: u:<user id>, e:<email> or d:<device>
            state BLOB NOT NULL,           -- engine state (server/engine/state.py)
            due_ms INTEGER,                -- the engine's next deadline for this user
            email TEXT,
            email_verified INTEGER NOT NULL DEFAULT 0,
            user_id TEXT,
            traits TEXT,                   -- JSON object
            timezone TEXT,
            last_sent TEXT,                -- JSON [sequence, step, at_ms]: conversion credit
            created_ms INTEGER NOT NULL,
            updated_ms INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE INDEX users_due ON users(due_ms) WHERE due_ms IS NOT NULL;
        CREATE INDEX users_email ON users(email) WHERE email IS NOT NULL;
        CREATE TABLE aliases (
            alias TEXT PRIMARY KEY,        -- d:<device> merged into a user
            key TEXT NOT NULL,             -- the user's routing key
            created_ms INTEGER NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE dedup (
            device TEXT NOT NULL,
            seq INTEGER NOT NULL,
            accepted INTEGER NOT NULL,     -- events applied the first time, acked again
            expires_ms INTEGER NOT NULL,
            user_key TEXT NOT NULL,        -- whose batch it was (erasure, the user's devices)
            PRIMARY KEY (device, seq)
        ) WITHOUT ROWID;
        CREATE INDEX dedup_expiry ON dedup(expires_ms);
        CREATE INDEX dedup_user ON dedup(user_key);
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            message_key TEXT NOT NULL UNIQUE,  -- (instance, step): the idempotency key of a send
            user_key TEXT NOT NULL,
            email TEXT NOT NULL,
            sequence TEXT NOT NULL,
            step INTEGER NOT NULL,
            template TEXT NOT NULL,
            vars TEXT NOT NULL,            -- JSON object
            created_ms INTEGER NOT NULL,
            due_ms INTEGER NOT NULL,       -- next attempt
            attempts INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL,          -- queued, sent, dead
            last_error TEXT,
            sent_ms INTEGER
        );
        CREATE INDEX outbox_queued ON outbox(due_ms) WHERE status = 'queued';
        CREATE INDEX outbox_user ON outbox(user_key);
        CREATE TABLE send_log (
            id INTEGER PRIMARY KEY,
            user_key TEXT NOT NULL,
            sequence TEXT NOT NULL,
            step INTEGER NOT NULL,
            template TEXT NOT NULL,
            at_ms INTEGER NOT NULL,
            status TEXT NOT NULL,          -- sent, suppressed
            reason TEXT,                   -- why suppressed
            message_key TEXT
        );
        CREATE INDEX send_log_user ON send_log(user_key, at_ms);
        CREATE TABLE stats (
            sequence TEXT NOT NULL,
            step INTEGER NOT NULL,         -- -1 for per-sequence counters (entered, exited)
            counter TEXT NOT NULL,         -- entered, exited, sent, suppressed:<reason>, ...
            n INTEGER NOT NULL,
            PRIMARY KEY (sequence, step, counter)
        ) WITHOUT ROWID;
        CREATE TABLE suppression (
            email TEXT PRIMARY KEY,        -- lowercased
            reason TEXT NOT NULL,          -- unsubscribed, bounced, operator
            at_ms INTEGER NOT NULL
        ) WITHOUT ROWID;
    """),
    ("log position (distributed mode)", """
        CREATE TABLE log_position (
            id INTEGER PRIMARY KEY CHECK (id = 0),
            seq INTEGER NOT NULL           -- the last JetStream sequence applied to this file
        );
    """),
    ("tombstones of erased users and devices", """
        CREATE TABLE erased (
            name TEXT PRIMARY KEY,         -- d:<device> or a routing key (u:, e:)
            erased_ms INTEGER NOT NULL
        ) WITHOUT ROWID;
    """),
    ("conversions are the engine's goals: the users' last email column goes", """
        ALTER TABLE users DROP COLUMN last_sent;
    """),
    ("counters by day, opens and clicks per email, dead letters found by index", """
        CREATE TABLE stats_daily (
            day INTEGER NOT NULL,          -- days since 1970-01-01 (UTC) when counted
            sequence TEXT NOT NULL,
            step INTEGER NOT NULL,
            counter TEXT NOT NULL,         -- as in stats
            n INTEGER NOT NULL,
            PRIMARY KEY (day, sequence, step, counter)
        ) WITHOUT ROWID;
        ALTER TABLE send_log ADD COLUMN opened_ms INTEGER;   -- the email's first open
        ALTER TABLE send_log ADD COLUMN clicked_ms INTEGER;  -- its first tracked click
        CREATE INDEX send_log_message ON send_log(message_key) WHERE message_key IS NOT NULL;
        CREATE INDEX outbox_dead ON outbox(id) WHERE status = 'dead';
    """),
    ("a user and their emails found by address in any case, without a scan", """
        CREATE INDEX users_lower_email ON users(lower(email));
        CREATE INDEX outbox_lower_email ON outbox(lower(email));
    """),
)


def schema_version(conn: sqlite3.Connection) -> int:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)"
    )
    row = conn.execute("SELECT max(version) FROM migrations").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, now_ms: int) -> int:
    """Bring the file to the latest schema; returns the version it is at."""
    for pragma in PRAGMAS:
        conn.execute(pragma)
    version = schema_version(conn)
    for number, (name, script) in enumerate(MIGRATIONS, start=1):
        if number <= version:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute("INSERT INTO migrations VALUES (?, ?, ?)", (number, name, now_ms))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = number
    return version


def _statements(script: str) -> list[str]:
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]

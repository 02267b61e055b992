"""What SQLite can do and what the shard files cost.

  sqlite rows   raw sqlite3 `executemany` into a file on disk, the shard files' pragmas (WAL,
                synchronous=NORMAL): one row per event of the load client's batches (device,
                seq, position, kind, dt_ms, the event's bytes), committed in transactions of as
                many events as the server's shard transactions carried in the ingest run. No
                engine, no gRPC, one thread: the ceiling of one writer storing events as rows.
  bytes/user    a fresh server (8 shards) takes every user's visit (`Visits`: of ten users,
                six browse anonymously, three are signed in, one signs in during the visit
                and is merged; a third add to the cart, which starts sequences and timers);
                then it is stopped (SIGTERM: queues drained, files checkpointed) and the shard
                files' bytes, -wal and -shm included, are divided by the users.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

from collector.gen.pulsewire.v1 import batch_pb2
from scripts.benchmarks import server_stack
from scripts.benchmarks.load_client import LoadSpec, run_load
from scripts.benchmarks.traffic import Traffic, Visits
from server.storage.schema import PRAGMAS

_BATCHES = 1000


def sqlite_rows(rows_per_commit: int, duration_s: float) -> dict[str, Any]:
    rows = _event_rows()
    per_commit = max(1, rows_per_commit)
    with tempfile.TemporaryDirectory(prefix="pw-bench-") as tmp, \
            closing(sqlite3.connect(Path(tmp) / "events.sqlite", isolation_level=None)) as db:
        for pragma in PRAGMAS:
            db.execute(pragma)
        db.execute("CREATE TABLE events (device TEXT NOT NULL, seq INTEGER NOT NULL,"
                   " i INTEGER NOT NULL, kind TEXT NOT NULL, dt_ms INTEGER NOT NULL,"
                   " body BLOB NOT NULL)")
        written, at, started = 0, 0, time.perf_counter()
        while time.perf_counter() - started < duration_s:
            chunk = rows[at:at + per_commit]
            at = at + per_commit if at + per_commit < len(rows) else 0
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?)", chunk)
            db.execute("COMMIT")
            written += len(chunk)
        elapsed = time.perf_counter() - started
    rate = written / elapsed
    print(f"raw sqlite3 executemany: {rate:,.0f} rows/s ({per_commit:,} a commit)", flush=True)
    return {"sqlite_rows_per_s": round(rate), "sqlite_rows_per_commit": per_commit}


def _event_rows() -> list[tuple[str, int, int, str, int, bytes]]:
    traffic = Traffic("rows", 4000, 100, 1)
    rows = []
    for _ in range(_BATCHES):
        batch = batch_pb2.Batch.FromString(traffic.batch())
        for i, event in enumerate(batch.events):
            kind = event.WhichOneof("payload") or ""
            rows.append((batch.device_id, batch.seq, i, kind, event.dt_ms,
                         event.SerializeToString()))
    return rows


def bytes_per_user(users: int) -> dict[str, Any]:
    visits = Visits("store", users, 7)  # the load client makes the same ones
    events = visits.events()
    with tempfile.TemporaryDirectory(prefix="pw-bench-") as tmp:
        with ExitStack() as stack:
            server = server_stack.start(stack, Path(tmp), shards=8, catalog=False)
            data_dir = server.data_dir
            load = run_load(LoadSpec("users", server.target, users=users, prefix="store",
                                     seed=7), server.pid)
        first_s, sign_in_s = load["part_s"]
        if load["rejected"] or load["events"] != events:
            print(f"warning: storage load: {load['rejected']} rejected, {load['events']:,} of "
                  f"{events:,} events acked")
        files = sorted(data_dir.glob("shard-*"))
        total = sum(f.stat().st_size for f in files)
        tables = _bytes_by_table(sorted(data_dir.glob("shard-*.sqlite")))
    per_user = total / users
    print(f"storage: {users:,} users, {events:,} events, {total / 1e6:.1f} MB in "
          f"{len(files)} files: {per_user:,.0f} bytes per user", flush=True)
    return {"storage_bytes_per_user": round(per_user), "storage_users": users,
            "storage_events_per_user": round(events / users, 1),
            "storage_shard_bytes": total, "storage_first_batches_per_s": round(users / first_s),
            "storage_merges_per_s": round(len(visits.parts[1]) / sign_in_s),
            "storage_bytes_by_table": tables}


def _bytes_by_table(files: list[Path]) -> dict[str, int]:
    """Bytes of each table and index over the files (SQLite's dbstat, when it has it)."""
    out: dict[str, int] = {}
    try:
        for path in files:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
                for name, size in db.execute(
                        "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
                    out[name] = out.get(name, 0) + int(size)
    except sqlite3.OperationalError:  # built without SQLITE_ENABLE_DBSTAT_VTAB
        return {}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))

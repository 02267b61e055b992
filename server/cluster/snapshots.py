"""Shard snapshots in JetStream's object store: a consistent copy of a shard file, named by
shard, described by the log position inside it.

The copy is made with SQLite's online backup from the committed file, so the position it holds
matches its rows exactly. A node taking a shard keeps its own file when that file is at least
as far along as the latest snapshot, else it puts the snapshot in its place; either way it then
replays the subject from the file's position.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import tempfile
from pathlib import Path

from nats.js.api import ObjectMeta
from nats.js.errors import NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from server.storage.statements import file_log_position

__all__ = ["Snapshots"]

log = logging.getLogger("pulsewire.cluster")


class Snapshots:
    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    @staticmethod
    def name(shard: int) -> str:
        return f"shard-{shard:03d}"

    async def save(self, shard: int, path: Path) -> int:
        """Copy `path` into the store; returns the log position the copy holds."""
        with tempfile.TemporaryDirectory() as scratch:
            copy = Path(scratch) / "copy.sqlite"
            position = await asyncio.to_thread(_backup, path, copy)
            with copy.open("rb") as data:
                await self._store.put(self.name(shard), data, meta=ObjectMeta(
                    name=self.name(shard), description=str(position)))
        return position

    async def latest(self, shard: int) -> int:
        """The position of the stored snapshot (-1: none)."""
        try:
            info = await self._store.get_info(self.name(shard))
        except (NotFoundError, ObjectNotFoundError):
            return -1
        return int(info.description or -1)

    async def restore(self, shard: int, path: Path) -> int:
        """Make `path` at least as far along as the latest snapshot; returns its position."""
        local = await asyncio.to_thread(file_log_position, path)
        remote = await self.latest(shard)
        if remote <= local:
            return local
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".restoring")
        with partial.open("wb") as out:
            await self._store.get(self.name(shard), writeinto=out)
        for stale in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            stale.unlink(missing_ok=True)
        partial.replace(path)
        log.info("shard %d: restored the snapshot at position %d (the file was at %d)",
                 shard, remote, local)
        return remote


def _backup(path: Path, copy: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as source, \
            contextlib.closing(sqlite3.connect(copy)) as target:
        source.backup(target)
    return file_log_position(copy)

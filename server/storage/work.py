"""What a shard's writer is asked to do: one typed item per kind of work, each with the future
that answers its caller once the group the item lands in has committed (or failed).

`position` is the distributed mode's log sequence an item ends: the largest of a group is
committed in the group's transaction, so a restarted owner resumes exactly after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aiosqlite

from server.engine import Event

__all__ = [
    "Erase",
    "FireTimers",
    "Identity",
    "Ingest",
    "IngestResult",
    "Link",
    "Position",
    "RowWrite",
    "Stop",
    "WorkItem",
]


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


@dataclass(slots=True)
class Ingest:
    """A batch's events for one user (or engine events: an open, a bounce)."""

    future: asyncio.Future[IngestResult]
    user_key: str
    events: list[Event]
    device: str = ""  # with `seq`, the dedup key: applied once ("" for no dedup)
    seq: int = 0
    identity: Identity | None = None
    merge_from: bytes | None = None  # an anonymous device's engine state to fold in first
    at_ms: int = 0  # when the batch was accepted, if not now (a replayed log entry)
    position: int = 0
    # With `merge_from`: the dedup keys (seq, events, expires) of the merged device's batches,
    # kept here too, so a retry of one that now routes here is still applied once.
    dedup_from: list[tuple[int, int, int]] = field(default_factory=list)


@dataclass(slots=True)
class Link:
    """A device now belongs to a user: `alias` (it had no history) or `retire` (its history
    moved into the user: its profile goes, an alias stays for late batches)."""

    future: asyncio.Future[None]
    kind: Literal["alias", "retire"]
    device_key: str
    user_key: str
    position: int = 0


@dataclass(slots=True)
class Erase:
    """Every row of these users and addresses."""

    future: asyncio.Future[int]
    user_keys: list[str]
    emails: list[str]
    position: int = 0
    tombstones: set[str] = field(default_factory=set)  # what the erase left, once written


@dataclass(slots=True)
class RowWrite:
    """Rows no engine state depends on (an outbox row's mark, an operator's suppression),
    written in the group's transaction by `apply`, one of server/storage/statements.py's."""

    future: asyncio.Future[Any]
    apply: Callable[[aiosqlite.Connection], Awaitable[Any]]
    position: int = 0


@dataclass(slots=True)
class FireTimers:
    """Fire every user timer due by now (the shard's timer task asks)."""

    future: asyncio.Future[int]
    position: int = 0


@dataclass(slots=True)
class Position:
    """Commit a log position (entries that changed nothing here, say passed on)."""

    future: asyncio.Future[None]
    position: int = 0


@dataclass(slots=True)
class Stop:
    future: asyncio.Future[None]
    position: int = 0


WorkItem = Ingest | Link | Erase | RowWrite | FireTimers | Position | Stop

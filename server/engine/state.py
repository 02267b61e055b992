"""Per-user engine state, and its compact bytes form (it lives in a SQLite row).

The state holds only what rules can still need: active instances, when instances ended (for
cooldowns), recent sends (for caps), the last few timestamps per signal tracker, inactivity
timers, the user's time zone and whether they can be mailed. Everything else about a user lives
outside the engine. The bytes are msgpack of plain lists, with a format number first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

__all__ = ["FORMAT", "Instance", "UserState", "decode_state", "encode_state"]

FORMAT = 1


@dataclass(slots=True)
class Instance:
    """One running instance of a sequence for one user (and one key value)."""

    sequence: str
    key: str  # "" for per-user sequences, else the entry event's key property
    step: int  # index of the step it is at
    started_ms: int
    due_ms: int | None  # when its timer fires (wait end, wait_for timeout, deferred send)
    entry: dict[str, Any]  # the entry event's properties: template vars, entry_where

    @property
    def id(self) -> str:
        return f"{self.sequence}/{self.key}/{self.started_ms}"


@dataclass(slots=True)
class UserState:
    user: str  # the routing key; stored beside the bytes, not in them
    instances: list[Instance] = field(default_factory=list)  # sorted by (sequence, key)
    ended_ms: dict[str, int] = field(default_factory=dict)  # "sequence/key" -> when it ended
    sends: list[tuple[int, str]] = field(default_factory=list)  # (sent at, group), oldest first
    signals: dict[str, list[int]] = field(default_factory=dict)  # tracker id -> timestamps
    inactive_due_ms: dict[str, int] = field(default_factory=dict)  # sequence id -> due
    tz: str | None = None
    block: str | None = None  # why the user cannot be mailed: unverified, unsubscribed, bounced


def encode_state(state: UserState) -> bytes:
    body = [
        FORMAT,
        [[i.sequence, i.key, i.step, i.started_ms, i.due_ms, i.entry] for i in state.instances],
        state.ended_ms,
        [list(s) for s in state.sends],
        state.signals,
        state.inactive_due_ms,
        state.tz,
        state.block,
    ]
    return msgpack.packb(body, use_bin_type=True)  # type: ignore[no-any-return]


def decode_state(user: str, data: bytes) -> UserState:
    body = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if not isinstance(body, list) or not body or body[0] != FORMAT:
        raise ValueError(f"unknown engine state format {body[0] if body else None!r}")
    _, instances, ended, sends, signals, inactive, tz, block = body
    return UserState(
        user=user,
        instances=[Instance(s, k, step, start, due, entry)
                   for s, k, step, start, due, entry in instances],
        ended_ms=ended,
        sends=[(at, group) for at, group in sends],
        signals=signals,
        inactive_due_ms=inactive,
        tz=tz,
        block=block,
    )

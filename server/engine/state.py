"""Per-user engine state, and its compact bytes form (it lives in a SQLite row).

The state holds only what rules can still need: active instances, when instances ended (for
cooldowns), recent sends (for caps), the last few timestamps per signal tracker, inactivity
timers, the goals still open, the user's time zone and whether they can be mailed. Everything
else about a user lives outside the engine. The bytes are msgpack of plain lists, with a format
number first; formats 1 (before goals, cohorts and arms) and 2 (before the lead score) still
read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

__all__ = ["FORMAT", "GoalWatch", "Instance", "UserState", "decode_state", "encode_state"]

FORMAT = 3
TREATED, HOLDOUT, GLOBAL_HOLDOUT = "treated", "holdout", "global_holdout"  # cohorts


@dataclass(slots=True)
class Instance:
    """One running instance of a sequence for one user (and one key value)."""

    sequence: str
    key: str  # "" for per-user sequences, else the entry event's key property
    step: int  # index of the step it is at
    started_ms: int
    due_ms: int | None  # when its timer fires (wait end, wait_for timeout, deferred send)
    entry: dict[str, Any]  # the entry event's properties: template vars, entry_where
    cohort: str = ""  # treated, holdout or global_holdout, drawn at entry ("": not yet drawn)
    arm: str = ""  # the split's arm it went down, "" before (or without) a split

    @property
    def id(self) -> str:
        return f"{self.sequence}/{self.key}/{self.started_ms}"


@dataclass(slots=True)
class GoalWatch:
    """An instance's goal, open from its entry until `until_ms` (it outlives the instance).
    `sent` is the last email of the instance, `clicked` the last one clicked: (step, template,
    at); `first_sent_ms` when the first went."""

    sequence: str
    key: str
    entered_ms: int
    until_ms: int
    cohort: str
    arm: str = ""
    first_sent_ms: int | None = None
    sent: tuple[int, str, int] | None = None
    clicked: tuple[int, str, int] | None = None


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
    goals: list[GoalWatch] = field(default_factory=list)  # oldest entry first
    score: float = 0.0  # the lead score at score_ms (server/engine/scoring.py)
    score_ms: int = 0
    band: str = ""
    score_due_ms: int | None = None  # when decay takes the score out of its band


def encode_state(state: UserState) -> bytes:
    body = [
        FORMAT,
        [[i.sequence, i.key, i.step, i.started_ms, i.due_ms, i.entry, i.cohort, i.arm]
         for i in state.instances],
        state.ended_ms,
        [list(s) for s in state.sends],
        state.signals,
        state.inactive_due_ms,
        state.tz,
        state.block,
        [[g.sequence, g.key, g.entered_ms, g.until_ms, g.cohort, g.arm, g.first_sent_ms,
          g.sent, g.clicked] for g in state.goals],
        [state.score, state.score_ms, state.band, state.score_due_ms],
    ]
    return msgpack.packb(body, use_bin_type=True)  # type: ignore[no-any-return]


def decode_state(user: str, data: bytes) -> UserState:
    body = msgpack.unpackb(data, raw=False, strict_map_key=False)
    if not isinstance(body, list) or not body or body[0] not in (1, 2, FORMAT):
        raise ValueError(f"unknown engine state format {body[0] if body else None!r}")
    if body[0] == 1:  # instances without cohort and arm (drawn at their next send), no goals
        body = [2, [[*i, "", ""] for i in body[1]], *body[2:], []]
    if body[0] == 2:  # no score yet
        body = [FORMAT, *body[1:], [0.0, 0, "", None]]
    _, instances, ended, sends, signals, inactive, tz, block, goals, scored = body
    score, score_ms, band, score_due = scored
    return UserState(
        user=user,
        instances=[Instance(*fields) for fields in instances],
        ended_ms=ended,
        sends=[(at, group) for at, group in sends],
        signals=signals,
        inactive_due_ms=inactive,
        tz=tz,
        block=block,
        goals=[GoalWatch(s, k, entered, until, cohort, arm, first,
                         tuple(sent) if sent else None, tuple(clicked) if clicked else None)
               for s, k, entered, until, cohort, arm, first, sent, clicked in goals],
        score=score, score_ms=score_ms, band=band, score_due_ms=score_due,
    )

"""What a shard keeps of a user besides the engine's state, and how engine decisions become
rows: pure rules, no I/O (the writer applies them to a group, then writes what they gathered).

- The identify rule: an identity that names an email (or changes whether it is verified)
  tells the engine, which decides mailability ("unverified" blocks mail until the site signs).
- Suppression: an unsubscribe or a bounce suppresses the user's address.
- Counters (`stats`): per sequence and step, `sent`, `suppressed:<reason>`, `opened`,
  `clicked`, `converted` (conversions credited to the step's email as the last one sent before
  them) and `converted:clicked` (as the last one clicked); per sequence (step -1) `entered`,
  `exited`, `converted`, each cohort's `entered:<cohort>` and `converted:<cohort>` (treated,
  holdout, global_holdout), and each split arm's `arm:<name>:entered` and
  `arm:<name>:converted`, counted for treated users only (the held-out are the sequence's
  control, not an arm's). server/measure/ turns them into rates and comparisons. Every
  counter is also kept per day (`stats_daily`), for figures over a period.
- Feedback: an open or a click also marks its email in the send log (first one only).
- What was seen: each event applied, with the sequences it moved, for the console's live page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from server.engine import (
    TREATED,
    Action,
    Assigned,
    Converted,
    Engine,
    Entered,
    Event,
    Exited,
    Send,
    Suppressed,
    UserState,
    decode_state,
)
from server.storage.work import Identity, Ingest

__all__ = [
    "Changes",
    "Seen",
    "UserRecord",
    "apply_ingest",
    "fire_timer",
    "note_identity",
]

_SUPPRESSING_EVENTS = {"unsubscribe": "unsubscribed", "email_bounce": "bounced"}
_FEEDBACK = {"email_open": "opened", "email_click": "clicked"}


@dataclass(slots=True)
class UserRecord:
    state: UserState
    email: str | None = None
    verified: bool = False
    user_id: str | None = None
    traits: dict[str, str] = field(default_factory=dict)
    created_ms: int = 0
    stored: bool = False  # a row exists in the file


@dataclass(frozen=True, slots=True)
class Seen:
    """An event applied to a user, and the sequences it moved (entered, sent, ended...)."""

    user_key: str
    name: str
    at_ms: int
    props: Mapping[str, Any]
    moved: tuple[str, ...]


@dataclass(slots=True)
class Changes:
    """Rows one group writes, gathered before the transaction; `day` is when it counts."""

    users: set[str] = field(default_factory=set)
    dedup: list[tuple[str, int, int, int, str]] = field(default_factory=list)
    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    send_log: list[tuple[Any, ...]] = field(default_factory=list)
    stats: dict[tuple[str, int, str], int] = field(default_factory=dict)
    suppress: list[tuple[str, str, int]] = field(default_factory=list)
    feedback: list[tuple[str, str, int]] = field(default_factory=list)  # (message, kind, at)
    seen: list[Seen] | None = None  # kept only when the shard's observer reads it
    day: int = 0

    def count(self, sequence: str, step: int, counter: str) -> None:
        key = (sequence, step, counter)
        self.stats[key] = self.stats.get(key, 0) + 1


def apply_ingest(engine: Engine, item: Ingest, user: UserRecord, now: int,
                 changes: Changes) -> None:
    """One user's batch through the engine, its decisions gathered into `changes`."""
    actions: list[Action] = []
    if item.merge_from is not None:
        engine.merge(user.state, decode_state(item.user_key, item.merge_from))
    if item.identity is not None:
        note_identity(user, item.identity)
        at = item.events[0].at_ms if item.events else now
        if (identify := _identify(user, at)) is not None:
            actions.extend(engine.receive(user.state, identify))
    for event in item.events:
        if event.name in _SUPPRESSING_EVENTS and user.email:
            changes.suppress.append((user.email.lower(), _SUPPRESSING_EVENTS[event.name], now))
        if event.name in _FEEDBACK:
            _count_feedback(event, changes)
        decided = engine.receive(user.state, event)
        actions.extend(decided)
        if changes.seen is not None:
            changes.seen.append(Seen(item.user_key, event.name, event.at_ms, event.props,
                                     tuple(sorted({a.sequence for a in decided if a.sequence}))))
    actions.extend(engine.advance(user.state, now))
    record(item.user_key, user, actions, now, changes)


def fire_timer(engine: Engine, key: str, user: UserRecord, now: int, changes: Changes) -> None:
    record(key, user, engine.advance(user.state, now), now, changes)


def note_identity(user: UserRecord, identity: Identity) -> None:
    if identity.email:
        changed = (user.email or "").lower() != identity.email.lower()
        user.email = identity.email
        user.verified = identity.verified or (user.verified and not changed)
    if identity.user_id:
        user.user_id = identity.user_id
    user.traits.update(identity.traits)


def _identify(user: UserRecord, at: int) -> Event | None:
    """The identify event the engine must hear: when the user has an email and whether it is
    verified changes what the engine knows (an unsubscribe or bounce stays)."""
    wanted = "" if user.verified else "unverified"
    if user.email and user.state.block in (None, "", "unverified") and user.state.block != wanted:
        return Event("identify", at, {"verified": user.verified})
    return None


def _count_feedback(event: Event, changes: Changes) -> None:
    sequence, step = event.props.get("sequence"), event.props.get("step")
    if isinstance(sequence, str) and isinstance(step, int):
        changes.count(sequence, step, _FEEDBACK[event.name])
    message = event.props.get("message")
    if isinstance(message, str):
        changes.feedback.append((message, _FEEDBACK[event.name], event.at_ms))


def record(key: str, user: UserRecord, actions: list[Action], now: int,
           changes: Changes) -> None:
    """Engine actions -> outbox rows, the send log and counters."""
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
                                   json.dumps(dict(action.vars), sort_keys=True), now, now))
            changes.send_log.append((key, action.sequence, action.step, action.template,
                                     action.at_ms, "sent", None, action.message_key))
            changes.count(action.sequence, action.step, "sent")
        elif isinstance(action, Suppressed):
            changes.send_log.append((key, action.sequence, action.step, action.template,
                                     action.at_ms, "suppressed", action.reason, None))
            changes.count(action.sequence, action.step, f"suppressed:{action.reason}")
        elif isinstance(action, Entered):
            changes.count(action.sequence, -1, "entered")
            changes.count(action.sequence, -1, f"entered:{action.cohort}")
        elif isinstance(action, Exited):
            changes.count(action.sequence, -1, "exited")
        elif isinstance(action, Assigned):
            if action.cohort == TREATED:
                changes.count(action.sequence, -1, f"arm:{action.arm}:entered")
        elif isinstance(action, Converted):
            _count_conversion(action, changes)


def _count_conversion(action: Converted, changes: Changes) -> None:
    changes.count(action.sequence, -1, "converted")
    changes.count(action.sequence, -1, f"converted:{action.cohort}")
    if action.sent is not None:
        changes.count(action.sequence, action.sent[0], "converted")
    if action.clicked is not None:
        changes.count(action.sequence, action.clicked[0], "converted:clicked")
    if action.arm and action.cohort == TREATED:
        changes.count(action.sequence, -1, f"arm:{action.arm}:converted")

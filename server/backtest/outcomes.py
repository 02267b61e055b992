"""What a replay counts per sequence, and what history can honestly say of its goal.

Besides entered, sent, suppressed (by reason) and exited, each sequence's tally keeps:
- converted: instances whose goal event came within the goal's window after entry (the engine
  decides, as live); of those, `converted_after_email` had an email of the instance go before
  the conversion, and `lead_ms` says how long before (first email to conversion);
- mailed: the users it sent anything to; with `goal_users` (users who did the goal event at any
  time in the history, in a window or not) it says how many were mailed and never converted;
- goal_events: every goal event in the history (the goal's event and `where`), and of those
  `goal_events_after_email`: the ones that came within the goal's window after an email of the
  sequence to that user. A replay cannot say what a user would have done unmailed; these say
  how often the mail came first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.engine import Action, Rules, Send
from server.engine.rules import GoalRule

__all__ = ["GoalIndex", "SequenceTally", "goal_index", "note_goal_event"]


@dataclass(slots=True)
class SequenceTally:
    entered: int = 0
    sent: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)  # reason -> count
    exited: int = 0
    converted: int = 0
    converted_after_email: int = 0
    lead_ms: list[int] = field(default_factory=list)  # first email -> conversion, ascending
    mailed: set[str] = field(default_factory=set)
    goal_users: set[str] = field(default_factory=set)
    goal_events: int = 0
    goal_events_after_email: int = 0

    def add(self, other: SequenceTally) -> None:
        """Fold in the tally of another part of the users (a worker's)."""
        self.entered += other.entered
        self.sent += other.sent
        self.suppressed.update(other.suppressed)
        self.exited += other.exited
        self.converted += other.converted
        self.converted_after_email += other.converted_after_email
        self.lead_ms = sorted(self.lead_ms + other.lead_ms)
        self.mailed |= other.mailed
        self.goal_users |= other.goal_users
        self.goal_events += other.goal_events
        self.goal_events_after_email += other.goal_events_after_email


GoalIndex = Mapping[str, tuple[tuple[str, GoalRule], ...]]  # event name -> (sequence, goal)


def goal_index(rules: Rules) -> GoalIndex:
    found: dict[str, list[tuple[str, GoalRule]]] = {}
    for seq_id, seq in sorted(rules.sequences.items()):
        found.setdefault(seq.goal.event, []).append((seq_id, seq.goal))
    return {name: tuple(goals) for name, goals in found.items()}


def note_goal_event(goals: Sequence[tuple[str, GoalRule]], tallies: Mapping[str, SequenceTally],
                    last_sent: dict[tuple[str, str], int], user: str, at_ms: int,
                    props: Mapping[str, Any], actions: list[Action]) -> None:
    """Count a goal event of `user` at `at_ms`. `last_sent` holds each (user, sequence)'s last
    email before this event was fed; `actions` are what feeding it decided (timers due before
    it may have sent; what it caused itself, at its own instant, came after it)."""
    for seq_id, goal in goals:
        if not goal.match(props):
            continue
        tally = tallies[seq_id]
        tally.goal_events += 1
        tally.goal_users.add(user)
        last = last_sent.get((user, seq_id))
        for action in actions:
            if isinstance(action, Send) and action.sequence == seq_id and action.at_ms < at_ms:
                last = action.at_ms if last is None else max(last, action.at_ms)
        if last is not None and at_ms - last <= goal.within_ms:
            tally.goal_events_after_email += 1

"""Goals: whether an instance's goal event happened within its window after entry.

Each instance opens a goal watch when it enters; the watch outlives the instance (a sequence
that sends one email and completes still converts when the purchase comes three days later)
and closes at the first goal event in (entered, entered + within], both ends included, or when
the window passes. The event that enters an instance never counts for it: goals are looked at
before entries. A new instance of the same sequence and key closes the older one's watch, so
one goal event counts once per sequence and key. While the watch is open it notes the
instance's emails and clicks, which the conversion is credited to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.engine.events import Event
from server.engine.matching import key_text
from server.engine.rules import Rules, SendRule, SequenceRules
from server.engine.state import GoalWatch, Instance, UserState

__all__ = ["expire_goals", "note_click", "note_sent", "open_goal", "reached_goals", "watch_of"]


def open_goal(state: UserState, seq: SequenceRules, inst: Instance) -> None:
    goals = state.goals
    for i, older in enumerate(goals):
        if older.sequence == seq.id and older.key == inst.key:
            del goals[i]  # at most one: each entry replaces the last
            break
    goals.append(GoalWatch(seq.id, inst.key, inst.started_ms,
                           inst.started_ms + seq.goal.within_ms, inst.cohort))


def watch_of(state: UserState, inst: Instance) -> GoalWatch | None:
    for watch in state.goals:
        if (watch.sequence == inst.sequence and watch.key == inst.key
                and watch.entered_ms == inst.started_ms):
            return watch
    return None


def note_sent(state: UserState, inst: Instance, step: int, template: str, t: int) -> None:
    watch = watch_of(state, inst)
    if watch is not None:
        watch.sent = (step, template, t)
        if watch.first_sent_ms is None:
            watch.first_sent_ms = t


def note_click(state: UserState, rules: Rules, ev: Event) -> None:
    """A click on an email of a sequence (the server's own link says which sequence and
    step) credits the open watch that sent it: the one whose instance the message names, else
    the latest of that sequence that sent anything."""
    sequence, step = ev.props.get("sequence"), ev.props.get("step")
    seq = rules.sequences.get(sequence) if isinstance(sequence, str) else None
    if seq is None or not isinstance(step, int) or not 0 <= step < len(seq.steps):
        return
    rule = seq.steps[step]
    message = str(ev.props.get("message", ""))
    sent = [w for w in state.goals if w.sequence == seq.id and w.sent is not None
            and w.entered_ms <= ev.at_ms <= w.until_ms]
    named = [w for w in sent if f"/{w.sequence}/{w.key}/{w.entered_ms}/" in message]
    chosen = (named or sent)[-1:] if sent else []
    for watch in chosen:
        watch.clicked = (step, rule.template if isinstance(rule, SendRule) else "", ev.at_ms)


def reached_goals(state: UserState, rules: Rules, ev: Event,
                  sequences: frozenset[str]) -> list[GoalWatch]:
    """The watches `ev` converts (taken out of the state), oldest entry first."""
    reached: list[GoalWatch] = []
    keep: list[GoalWatch] = []
    for watch in state.goals:
        seq = rules.sequences.get(watch.sequence)
        if seq is None or watch.until_ms < ev.at_ms:
            continue  # its sequence is gone, or its window has passed: it can never convert
        if watch.sequence in sequences and _meets(seq, watch, ev.props, ev.at_ms):
            reached.append(watch)
        else:
            keep.append(watch)
    state.goals = keep
    return reached


def expire_goals(state: UserState, rules: Rules, now_ms: int) -> None:
    if state.goals:
        state.goals = [g for g in state.goals
                       if g.until_ms >= now_ms and g.sequence in rules.sequences]


def _meets(seq: SequenceRules, watch: GoalWatch, props: Mapping[str, Any], at_ms: int) -> bool:
    goal = seq.goal
    return (watch.entered_ms <= at_ms and goal.match(props)
            and (not goal.match_key or key_text(props.get(seq.key)) == watch.key))

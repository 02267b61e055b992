"""Conditions (an entry's `if`, a branch) over one user's recent signals, segment membership
and the instance's entry event; recording an event in the signals; and the template variables
of the segments a user is in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from server.engine.rules import NO_STAMPS, ConditionRule, EventPlan, Rules, SegmentRules
from server.engine.scoring import score_at
from server.engine.state import UserState

__all__ = ["all_hold", "segment_vars", "track"]


def all_hold(rules: Rules, state: UserState, conds: tuple[ConditionRule, ...],
             entry: Mapping[str, Any], t: int) -> bool:
    return all(_holds(rules, state, cond, entry, t) for cond in conds)


def _holds(rules: Rules, state: UserState, cond: ConditionRule, entry: Mapping[str, Any],
           t: int) -> bool:
    signal = cond.signal
    if signal is not None:
        return signal.holds(state.signals.get(signal.tracker, NO_STAMPS), t)
    if cond.segment is not None:
        seg = rules.segments.get(cond.segment)
        return seg is not None and seg.holds(state.signals, t)
    if cond.score is not None:
        low, high = cond.score
        value = score_at(state, rules.scoring, t) if rules.scoring is not None else 0.0
        return (low is None or value >= low) and (high is None or value <= high)
    return cond.entry_match is not None and cond.entry_match(entry)


def segment_vars(rules: Rules, state: UserState, t: int) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for seg in rules.segments.values():
        if seg.vars and seg.holds(state.signals, t):
            merged.update(seg.vars)
    return merged


def track(state: UserState, plan: EventPlan, props: Mapping[str, Any],
          t: int) -> Sequence[SegmentRules]:
    """Record the event in the signals it matches; return the segments the user joins by it.

    Only signals change segment membership, and only the segments a matching tracker feeds
    can change, so membership is read only when such a tracker matches: before its first
    timestamp goes in (trackers of other segments cannot change it), and after the last."""
    signals = state.signals
    watched = plan.watched
    rising: list[SegmentRules] | None = None
    for tracker in plan.trackers:
        if not tracker.match(props):
            continue
        if rising is None and tracker.id in watched:
            rising = [seg for seg in plan.segments if not seg.holds(signals, t)]
        tracker.record(signals, t)
    if not rising:
        return ()
    return [seg for seg in rising if seg.holds(signals, t)]

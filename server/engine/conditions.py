"""Conditions (an entry's `if`, a branch) over one user's recent signals, segment membership
and the instance's entry event, and the template variables of the segments a user is in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.engine.rules import NO_STAMPS, ConditionRule, Rules
from server.engine.state import UserState

__all__ = ["all_hold", "segment_vars"]


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
    return cond.entry_match is not None and cond.entry_match(entry)


def segment_vars(rules: Rules, state: UserState, t: int) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for seg in rules.segments.values():
        if seg.vars and seg.holds(state.signals, t):
            merged.update(seg.vars)
    return merged

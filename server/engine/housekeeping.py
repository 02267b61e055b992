"""Keeping a user's state whole and small: merging an anonymous device's state into the user it
turned out to be, and forgetting what no rule can use any more."""

from __future__ import annotations

from collections import Counter

from server.engine.goals import expire_goals
from server.engine.rules import Rules
from server.engine.state import Instance, UserState

__all__ = ["compact", "instance_order", "merge_states"]


def instance_order(inst: Instance) -> tuple[str, str]:
    return inst.sequence, inst.key


def merge_states(rules: Rules, into: UserState, other: UserState) -> None:
    """Fold `other` into `into`. Idempotent: merging the same state twice changes nothing more
    than merging it once (timestamps are merged as multisets taking the larger count, so events
    at one instant survive; an instance or a goal already there is kept as it is)."""
    for tracker_id, stamps in other.signals.items():
        merged = sorted((Counter(into.signals.get(tracker_id, [])) | Counter(stamps))
                        .elements())
        keep = rules.keeps.get(tracker_id, len(merged))
        into.signals[tracker_id] = merged[-keep:] if keep else []
    running = {(i.sequence, i.key) for i in into.instances}
    for inst in other.instances:
        if (inst.sequence, inst.key) not in running:
            into.instances.append(inst)
    into.instances.sort(key=instance_order)
    watched = {(g.sequence, g.key) for g in into.goals}
    for watch in other.goals:
        if (watch.sequence, watch.key) not in watched:
            into.goals.append(watch)
    into.goals.sort(key=lambda g: g.entered_ms)
    for ended_key, ended in other.ended_ms.items():
        into.ended_ms[ended_key] = max(ended, into.ended_ms.get(ended_key, ended))
    into.sends = sorted((Counter(into.sends) | Counter(other.sends)).elements())
    for seq_id, due in other.inactive_due_ms.items():
        into.inactive_due_ms.setdefault(seq_id, due)
    into.tz = into.tz or other.tz


def compact(rules: Rules, state: UserState, now: int) -> None:
    """Forget what no rule can use any more, so stored state stays small."""
    for ended_key, ended in list(state.ended_ms.items()):
        seq = rules.sequences.get(ended_key.split("/", 1)[0])
        if seq is None or now >= ended + seq.cooldown_ms:
            del state.ended_ms[ended_key]
    for tracker_id, stamps in list(state.signals.items()):
        horizon = rules.horizons_ms.get(tracker_id)
        if horizon is None or not stamps or stamps[-1] <= now - horizon:
            del state.signals[tracker_id]
    for seq_id in [s for s in state.inactive_due_ms if s not in rules.sequences]:
        del state.inactive_due_ms[seq_id]
    expire_goals(state, rules, now)

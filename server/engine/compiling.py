"""Compiling a validated sequence set (server/sequences/) into the engine's rules
(server/engine/rules.py): each distinct (event, where) of any condition becomes one tracker,
steps become rule objects with their jump targets resolved, and each event name gets a plan
listing only what it can change."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from server.engine.matching import compile_where
from server.engine.rules import (
    CLICK_EVENT,
    DEFAULT_TIMEOUT_EMITS,
    EXIT,
    MAILABILITY_EVENTS,
    NEXT,
    USER_KEY,
    ArmRule,
    BranchRule,
    CapRule,
    ConditionRule,
    EventPlan,
    ExitRule,
    ExitStepRule,
    GoalRule,
    JumpRule,
    Rules,
    ScoringRules,
    SegmentRules,
    SendRule,
    SequenceRules,
    SignalRule,
    SplitRule,
    StepRule,
    Tracker,
    WaitForRule,
    WaitRule,
)
from server.sequences.conditions import ScoreCondition
from server.sequences.model import (
    BranchStep,
    EntryWhere,
    EventEntry,
    ExitStep,
    InactivityEntry,
    Match,
    SegmentEntry,
    SegmentMember,
    SendStep,
    Sequence,
    SequenceSet,
    Signal,
    SplitStep,
    WaitForStep,
    WaitStep,
)
from server.sequences.scoring import Scoring

__all__ = ["compile_rules"]


class _TrackerTable:
    """Collects signals during compilation; signals on the same (event, where) share a tracker."""

    def __init__(self) -> None:
        self.specs: dict[str, tuple[str, Mapping[str, Match], int, int]] = {}

    def signal(self, event: str, where: Mapping[str, Match], within_ms: int,
               at_least: int | None, at_most: int | None) -> SignalRule:
        if at_least is None and at_most is None:
            at_least = 1
        ident = _fingerprint(event, where)
        keep = max(at_least or 0, (at_most + 1) if at_most is not None else 0)
        _, _, old_keep, old_horizon = self.specs.get(ident, (event, where, 0, 0))
        self.specs[ident] = (event, where, max(keep, old_keep), max(within_ms, old_horizon))
        return SignalRule(ident, within_ms, at_least, at_most)

    def trackers(self) -> list[Tracker]:
        return [
            Tracker(ident, event, compile_where(where), keep, horizon, _describe(event, where))
            for ident, (event, where, keep, horizon) in sorted(self.specs.items())
        ]


def _fingerprint(event: str, where: Mapping[str, Match]) -> str:
    """Stable across processes and reloads, so remembered signals survive a reload."""
    canonical = json.dumps(
        [event, {k: _plain(v) for k, v in sorted(where.items())}], sort_keys=True, default=str
    )
    return hashlib.blake2b(canonical.encode(), digest_size=6).hexdigest()


def _describe(event: str, where: Mapping[str, Match]) -> str:
    if not where:
        return event
    plain = {k: _plain(v) for k, v in sorted(where.items())}
    return f"{event} where {json.dumps(plain, sort_keys=True, default=str)}"


def _plain(value: Match) -> Any:
    return value.model_dump(exclude_none=True) if hasattr(value, "model_dump") else value


def compile_rules(sequence_set: SequenceSet, scoring: Scoring | None = None) -> Rules:
    """The set's rules; with `scoring` (the config's `[scoring]`), the lead score's too."""
    table = _TrackerTable()
    caps = [(c.group, c.max, c.per) for s in sequence_set.sequences for c in s.caps]
    unique_caps = tuple(CapRule(g, m, p) for g, m, p in sorted(set(caps)))
    sequences = {s.id: _compile_sequence(s, table, unique_caps) for s in sequence_set.sequences}
    segments = {
        seg.segment: SegmentRules(
            seg.segment,
            tuple(
                table.signal(
                    t.event,
                    {**t.where, **({"path": t.page} if t.page is not None else {})},
                    t.time_in_minutes * 60_000,
                    t.at_least,
                    None,
                )
                for t in seg.triggers
            ),
            {rule.field: rule.value for rule in seg.content_rules},
        )
        for seg in sequence_set.segments
    }
    trackers = table.trackers()
    ordered = sorted(sequences.values(), key=lambda s: s.id)
    events_of = {t.id: t.event for t in trackers}
    parts: dict[str, dict[str, Any]] = {}

    def add(event: str, part: str, item: Any) -> None:
        parts.setdefault(event, {}).setdefault(part, []).append(item)

    for tracker in trackers:
        add(tracker.event, "trackers", tracker)
    entries_by_segment = _group(ordered, lambda s: [s.entry_segment] if s.entry_segment else [])
    for seg in segments.values():
        if seg.name not in entries_by_segment:
            continue
        for event in sorted({events_of[t.tracker] for t in seg.triggers}):
            add(event, "segments", seg)
    for seq in ordered:
        if seq.entry_event:
            add(seq.entry_event, "entries", seq)
        for x in seq.exits:
            add(x.event, "exits", seq.id)
        for step in seq.steps:
            if isinstance(step, WaitForRule):
                parts.setdefault(step.event, {})["awaited"] = True
        if seq.inactivity:
            add(seq.inactivity[2], "arms", seq)
            add(seq.inactivity[0], "cancels", seq)
        add(seq.goal.event, "goals", seq.id)
    for event in (*MAILABILITY_EVENTS, CLICK_EVENT):
        parts.setdefault(event, {})
    for rule in scoring.rules if scoring is not None else ():
        add(rule.event, "scores", (compile_where(rule.where), rule.points))
    plans = {
        event: EventPlan(
            trackers=tuple(found.get("trackers", ())),
            entries=tuple(found.get("entries", ())),
            exits=frozenset(found.get("exits", ())),
            awaited=bool(found.get("awaited", False)),
            segments=tuple(found.get("segments", ())),
            watched=frozenset(trigger.tracker for seg in found.get("segments", ())
                              for trigger in seg.triggers),
            arms=tuple(found.get("arms", ())),
            cancels=tuple(found.get("cancels", ())),
            mailability=event in MAILABILITY_EVENTS,
            goals=frozenset(found.get("goals", ())),
            clicks=event == CLICK_EVENT and bool(sequences),
            scores=tuple(found.get("scores", ())),
        )
        for event, found in parts.items()
    }
    return Rules(
        sequences=sequences,
        segments=segments,
        plans=plans,
        entries_by_segment=entries_by_segment,
        horizons_ms={t.id: t.horizon_ms for t in trackers},
        descriptions={t.id: t.description for t in trackers},
        keeps={t.id: t.keep for t in trackers},
        longest_cap_ms=max((c.per_ms for c in unique_caps), default=0),
        scoring=ScoringRules(scoring.half_life, tuple(sorted(scoring.bands.items(),
                                                             key=lambda band: band[1])))
        if scoring is not None else None,
    )


def _group(items: list[Any], keys: Any) -> dict[str, tuple[Any, ...]]:
    grouped: dict[str, list[Any]] = {}
    for item in items:
        for key in keys(item):
            grouped.setdefault(key, []).append(item)
    return {k: tuple(v) for k, v in grouped.items()}


def _compile_sequence(seq: Sequence, table: _TrackerTable,
                      caps: tuple[CapRule, ...]) -> SequenceRules:
    entry = seq.entry
    entry_event = entry.event if isinstance(entry, EventEntry) else None
    steps = _compile_steps(seq, table, entry_event)
    split_at = next((i for i, step in enumerate(steps) if isinstance(step, SplitRule)), -1)
    group = seq.group or ""
    return SequenceRules(
        id=seq.id,
        group=group,
        key=seq.key,
        entry_event=entry_event,
        entry_match=compile_where(entry.where if isinstance(entry, EventEntry) else {}),
        entry_conditions=_conditions(entry.if_, table) if isinstance(entry, EventEntry) else (),
        entry_segment=entry.segment if isinstance(entry, SegmentEntry) else None,
        inactivity=(entry.inactive.event, entry.inactive.for_, entry.inactive.since)
        if isinstance(entry, InactivityEntry) else None,
        exits=tuple(ExitRule(x.event, compile_where(x.where), x.match_key and seq.key != USER_KEY)
                    for x in seq.exit_on),
        steps=tuple(steps),
        cooldown_ms=seq.cooldown,
        caps=tuple(c for c in caps if c.group == "*" or (group and c.group == group)),
        quiet_hours=seq.quiet_hours,
        holdout=seq.holdout,
        goal=GoalRule(seq.goal.event, compile_where(seq.goal.where), seq.goal.within,
                      seq.goal.match_key and seq.key != USER_KEY),
        exit_on_goal=seq.exit_on_goal,
        split_at=split_at,
    )


def _compile_steps(seq: Sequence, table: _TrackerTable,
                   entry_event: str | None) -> list[StepRule]:
    """The steps in the engine's flat order (server/sequences/steps.py), with a jump closing
    each arm of a split but the last, which runs on into the step after the split."""
    order: list[Any] = []  # each a model step, or ("jump", the index of the split it closes)
    arms: dict[int, list[tuple[str, float, int, int]]] = {}  # split index -> its arms
    for step in seq.steps:
        order.append(step)
        if isinstance(step, SplitStep):
            at, placed = len(order) - 1, arms.setdefault(len(order) - 1, [])
            for j, arm in enumerate(step.split.arms):
                start = len(order)
                order.extend(arm.steps)
                if j < len(step.split.arms) - 1:
                    order.append(("jump", at))
                placed.append((arm.name, arm.weight, start, len(order)))
    names = {step.name: i for i, step in enumerate(order)
             if not isinstance(step, tuple) and step.name is not None}
    after = {at: placed[-1][3] for at, placed in arms.items()}

    def target(label: str) -> int:
        return {"next": NEXT, "exit": EXIT}.get(label, names.get(label, NEXT))

    out: list[StepRule] = []
    for i, step in enumerate(order):
        if isinstance(step, tuple):
            out.append(JumpRule(after[step[1]]))
        elif isinstance(step, SendStep):
            out.append(SendRule(step.send.template, dict(step.send.vars)))
        elif isinstance(step, WaitStep):
            out.append(WaitRule(step.wait))
        elif isinstance(step, WaitForStep):
            wf = step.wait_for
            emit = wf.emit if "emit" in wf.model_fields_set else DEFAULT_TIMEOUT_EMITS.get(
                entry_event or "")
            out.append(WaitForRule(wf.event, compile_where(wf.where), wf.timeout,
                                   wf.match_key and seq.key != USER_KEY,
                                   target(step.on_event), target(step.on_timeout), emit))
        elif isinstance(step, BranchStep):
            out.append(BranchRule(_conditions(step.branch.if_, table),
                                  target(step.branch.then), target(step.branch.else_)))
        elif isinstance(step, SplitStep):
            out.append(SplitRule(tuple(ArmRule(*arm) for arm in arms[i])))
        elif isinstance(step, ExitStep):
            out.append(ExitStepRule())
    return out


def _conditions(conds: list[Any], table: _TrackerTable) -> tuple[ConditionRule, ...]:
    out = []
    for cond in conds:
        if isinstance(cond, Signal):
            out.append(ConditionRule(signal=table.signal(
                cond.event, cond.where, cond.within, cond.at_least, cond.at_most)))
        elif isinstance(cond, SegmentMember):
            out.append(ConditionRule(segment=cond.segment))
        elif isinstance(cond, EntryWhere):
            out.append(ConditionRule(entry_match=compile_where(cond.entry_where)))
        elif isinstance(cond, ScoreCondition):
            out.append(ConditionRule(score=(cond.score.at_least, cond.score.at_most)))
    return tuple(out)

"""A sequence set compiled for the engine: predicates built once, lookups indexed by event name.

Every condition over recent events (entry `if`, branch `if`, segment triggers) is a *signal*: a
count of matching events within a window ending now. The engine keeps, per user and per distinct
(event, where) pair, only the timestamps of the last few matching events, as many as the most
demanding condition on that pair needs, so a user's state stays small whatever the traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from server.engine.matching import Predicate
from server.sequences.model import (
    QuietHours,
)

__all__ = [
    "ArmRule",
    "BranchRule",
    "CapRule",
    "ConditionRule",
    "EventPlan",
    "ExitRule",
    "GoalRule",
    "JumpRule",
    "Rules",
    "ScoringRules",
    "SendRule",
    "SequenceRules",
    "SignalRule",
    "SplitRule",
    "StepRule",
    "Tracker",
    "WaitForRule",
    "WaitRule",
]

# A wait_for that times out in a sequence entered on one of these emits the named event.
DEFAULT_TIMEOUT_EMITS = {
    "cart_add": "cart_abandonment",
    "checkout_start": "checkout_abandonment",
    "product_view": "browse_abandonment",
}
EXIT, NEXT = -1, -2  # step targets besides a step index
USER_KEY = "user"
MAILABILITY_EVENTS = ("identify", "unsubscribe", "email_bounce", "resubscribe")
CLICK_EVENT = "email_click"  # credits the clicked email of the instance it came from
NO_STAMPS: list[int] = []  # read only: the timestamps of a tracker that has seen nothing yet


@dataclass(frozen=True, slots=True)
class Tracker:
    """Which events to remember for signals: their timestamps, the last `keep` of them."""

    id: str
    event: str
    match: Predicate
    keep: int
    horizon_ms: int  # older timestamps can no longer make any condition hold
    description: str  # the event and its filter, for people

    def record(self, signals: dict[str, list[int]], at_ms: int) -> None:
        """Note a matching event at `at_ms`: keep the last `keep` stamps within the horizon."""
        stamps = signals.get(self.id)
        if stamps is None:
            stamps = signals[self.id] = []
        stamps.append(at_ms)
        if len(stamps) > self.keep:
            del stamps[:len(stamps) - self.keep]
        cutoff = at_ms - self.horizon_ms
        while stamps and stamps[0] <= cutoff:
            del stamps[0]


@dataclass(frozen=True, slots=True)
class SignalRule:
    tracker: str
    within_ms: int
    at_least: int | None
    at_most: int | None

    def holds(self, stamps: list[int], now_ms: int) -> bool:
        start = now_ms - self.within_ms  # the window is (now - within, now]
        if self.at_least is not None and (
            len(stamps) < self.at_least or stamps[-self.at_least] <= start
        ):
            return False
        if self.at_most is not None:
            recent = sum(1 for t in stamps[-(self.at_most + 1):] if t > start)
            if recent > self.at_most:
                return False
        return True


@dataclass(frozen=True, slots=True)
class ConditionRule:
    """One condition: a signal, segment membership, a property of the entry event, or the
    lead score within (at least, at most)."""

    signal: SignalRule | None = None
    segment: str | None = None
    entry_match: Predicate | None = None
    score: tuple[float | None, float | None] | None = None


@dataclass(frozen=True, slots=True)
class ScoringRules:
    """The lead score (server/engine/scoring.py): its half-life, and its bands lowest first."""

    half_life_ms: int
    bands: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class SendRule:
    template: str
    vars: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class WaitRule:
    duration_ms: int


@dataclass(frozen=True, slots=True)
class WaitForRule:
    event: str
    match: Predicate
    timeout_ms: int
    match_key: bool
    on_event: int
    on_timeout: int
    emit: str | None


@dataclass(frozen=True, slots=True)
class BranchRule:
    conditions: tuple[ConditionRule, ...]
    then: int
    else_: int


@dataclass(frozen=True, slots=True)
class ExitStepRule:
    pass


@dataclass(frozen=True, slots=True)
class ArmRule:
    name: str
    weight: float
    start: int  # the index of its first step
    end: int  # one past its last step (its closing jump included)


@dataclass(frozen=True, slots=True)
class SplitRule:
    arms: tuple[ArmRule, ...]

    def pick(self, draw: float) -> ArmRule:
        """The arm a draw in [0, 1) falls in, each arm taking its share of the total weight."""
        target = draw * sum(arm.weight for arm in self.arms)
        for arm in self.arms:
            target -= arm.weight
            if target < 0:
                return arm
        return self.arms[-1]


@dataclass(frozen=True, slots=True)
class JumpRule:
    """The end of a split's arm: on to the step after the split."""

    target: int


StepRule = SendRule | WaitRule | WaitForRule | BranchRule | ExitStepRule | SplitRule | JumpRule


@dataclass(frozen=True, slots=True)
class ExitRule:
    event: str
    match: Predicate
    match_key: bool


@dataclass(frozen=True, slots=True)
class GoalRule:
    event: str
    match: Predicate
    within_ms: int
    match_key: bool


@dataclass(frozen=True, slots=True)
class CapRule:
    group: str  # "*" for every send
    max: int
    per_ms: int


@dataclass(frozen=True, slots=True)
class SequenceRules:
    id: str
    group: str
    key: str
    entry_event: str | None
    entry_match: Predicate
    entry_conditions: tuple[ConditionRule, ...]
    entry_segment: str | None
    inactivity: tuple[str, int, str] | None  # (event, for_ms, since)
    exits: tuple[ExitRule, ...]
    steps: tuple[StepRule, ...]
    cooldown_ms: int
    caps: tuple[CapRule, ...]  # every cap in the set that covers this sequence's group
    quiet_hours: QuietHours | None
    holdout: float
    goal: GoalRule
    exit_on_goal: bool
    split_at: int  # the index of its split step, -1 when it has none


@dataclass(frozen=True, slots=True)
class SegmentRules:
    name: str
    triggers: tuple[SignalRule, ...]
    vars: Mapping[str, Any]

    def holds(self, signals: Mapping[str, list[int]], now_ms: int) -> bool:
        """Whether a user with these signals is a member at `now_ms`."""
        for trigger in self.triggers:
            if not trigger.holds(signals.get(trigger.tracker, NO_STAMPS), now_ms):
                return False
        return True


@dataclass(frozen=True, slots=True)
class EventPlan:
    """Everything one event name can touch, found with a single lookup per event."""

    trackers: tuple[Tracker, ...] = ()
    entries: tuple[SequenceRules, ...] = ()
    exits: frozenset[str] = frozenset()  # ids of sequences whose exit_on names the event
    awaited: bool = False  # some wait_for listens for it
    # Segments with a trigger on it that some sequence enters on: the only ones whose joining
    # by this event can start anything. Membership of the others is read where it is needed.
    segments: tuple[SegmentRules, ...] = ()
    watched: frozenset[str] = frozenset()  # ids of the trackers that feed those segments
    arms: tuple[SequenceRules, ...] = ()  # inactivity entries it (re)starts the clock of
    cancels: tuple[SequenceRules, ...] = ()  # inactivity entries it ends the wait of
    mailability: bool = False  # it can change whether the user can be mailed
    goals: frozenset[str] = frozenset()  # ids of sequences whose goal is this event
    clicks: bool = False  # a click on an email: credits it for the goal
    scores: tuple[tuple[Predicate, float], ...] = ()  # (where, points) of the score's rules
    signals_only: bool = field(init=False)  # it feeds signals and nothing else: decides nothing

    def __post_init__(self) -> None:
        object.__setattr__(self, "signals_only", not (
            self.entries or self.exits or self.awaited or self.segments or self.arms
            or self.cancels or self.mailability or self.goals or self.clicks or self.scores))


@dataclass(frozen=True, slots=True)
class Rules:
    """The compiled set: sequences and segments by name, and a plan per event name."""

    sequences: Mapping[str, SequenceRules]
    segments: Mapping[str, SegmentRules]
    plans: Mapping[str, EventPlan]  # an event name absent here changes nothing but timers
    entries_by_segment: Mapping[str, tuple[SequenceRules, ...]]
    horizons_ms: Mapping[str, int]  # tracker id -> how long its timestamps matter
    descriptions: Mapping[str, str]  # tracker id -> the event and its filter
    keeps: Mapping[str, int]  # tracker id -> how many timestamps it keeps
    longest_cap_ms: int
    scoring: ScoringRules | None = None

"""The sequence language: typed objects that sequence and segment files load into.

A sequence file says when a user enters (an event with conditions, a segment, or inactivity),
what an instance is keyed by, its steps (send, wait, wait_for, branch, exit, split: steps.py),
what ends it at once (exit_on), what counts as its success (goal), and the rules that hold back
email (cooldown, caps, quiet hours, holdout).
A segment file names a set of users by recent events. `pulsewire schema` prints the JSON Schema
of both; the engine compiles them into its own rule objects (server/engine/rules.py).

Durations are strings with a unit ("60m", "7d") of at most ten years; inside the model they are
milliseconds. A time zone is a name the time zone database has, nothing else.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import (
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from server.sequences.conditions import (
    Condition,
    DurationMs,
    EntryWhere,
    Match,
    Name,
    Operators,
    SegmentMember,
    Signal,
    Strict,
    Where,
    tag_by_key,
)
from server.sequences.durations import MAX_DURATION_MS, MAX_DURATION_TEXT
from server.sequences.steps import (
    Arm,
    Branch,
    BranchStep,
    ExitStep,
    Send,
    SendStep,
    Split,
    SplitStep,
    Step,
    WaitFor,
    WaitForStep,
    WaitStep,
    check_targets,
)

__all__ = [
    "Arm",
    "Branch",
    "BranchStep",
    "Cap",
    "Condition",
    "ContentRule",
    "EntryWhere",
    "EventEntry",
    "ExitOn",
    "ExitStep",
    "Goal",
    "InactivityEntry",
    "Match",
    "Operators",
    "QuietHours",
    "Segment",
    "SegmentEntry",
    "SegmentMember",
    "Send",
    "SendStep",
    "Sequence",
    "SequenceSet",
    "Signal",
    "Split",
    "SplitStep",
    "Step",
    "Trigger",
    "WaitFor",
    "WaitForStep",
    "WaitStep",
]

GROUP_ALL = "*"


# ---- entry ----------------------------------------------------------------------------------


class EventEntry(Strict):
    """Enter on an event with these properties, when every condition in `if` holds."""

    event: Name
    where: Where = Field(default_factory=dict)
    if_: list[Condition] = Field(default_factory=list, alias="if")


class SegmentEntry(Strict):
    """Enter when the user becomes a member of a segment."""

    segment: Name


class Inactivity(Strict):
    """No `event` for `for` since the last `since` event (by default: no open N after a send)."""

    event: Name = "email_open"
    for_: DurationMs = Field(alias="for")
    since: Name = "email_sent"


class InactivityEntry(Strict):
    """Enter when the user has been inactive (re-engagement)."""

    inactive: Inactivity


_entry_kind = tag_by_key(("segment", "inactive"), "event")


Entry = Annotated[
    Annotated[EventEntry, Tag("=event")]
    | Annotated[SegmentEntry, Tag("=segment")]
    | Annotated[InactivityEntry, Tag("=inactive")],
    Discriminator(
        _entry_kind,
        custom_error_type="entry_kind",
        custom_error_message="entry is a mapping: {event, ...}, {segment} or {inactive}",
    ),
]


class ExitOn(Strict):
    """An event that ends the instance at once, wherever it is."""

    event: Name
    where: Where = Field(default_factory=dict)
    match_key: bool = Field(
        default=True, description="for keyed sequences: only an event with the same key value"
    )


# ---- rules that hold email back -------------------------------------------------------------


class Cap(Strict):
    """At most `max` emails per user in any rolling window of `per`, counted over `group`.

    `group: "*"` counts every email of every sequence: the global per-user cap.
    """

    group: Name | Literal["*"]
    max: int = Field(ge=0)
    per: DurationMs


_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_MAX_ZONE_CHARS = 64  # the longest IANA name has 32


@cache
def _zone_names() -> frozenset[str]:
    """The zone names the time zone database has. Only these: ZoneInfo given a directory of
    the database ("America") or a name past the file system's limit raises OSError, and a name
    is a path into the database, which it must not leave."""
    return frozenset(available_timezones())


class QuietHours(Strict):
    """No email between `start` and `end` in the user's time zone; a send due then waits."""

    start: str = Field(json_schema_extra={"pattern": _CLOCK.pattern}, examples=["21:00"])
    end: str = Field(json_schema_extra={"pattern": _CLOCK.pattern}, examples=["08:00"])
    timezone: str = Field(default="UTC", max_length=_MAX_ZONE_CHARS, examples=["Europe/Paris"],
                          description="an IANA time zone, for users whose time zone is unknown")

    @field_validator("start", "end")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f"{value!r} is not a 24-hour clock time like \"21:00\" (quote it)")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in _zone_names():
            raise ValueError(f"unknown time zone {value!r}: give an IANA name, e.g. Europe/Paris")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start equals end: quiet hours would be empty")
        return self


DEFAULT_GOAL_WITHIN_MS = 7 * 86_400_000


class Goal(Strict):
    """What counts as the sequence working: `event` (with `where`) within `within` of entry.

    Counted once per instance, for held-out users as for mailed ones, and credited to the last
    email of the instance sent before it (and, apart, to the last one clicked)."""

    event: Name = "purchase"
    where: Where = Field(default_factory=dict)
    within: DurationMs = Field(default=DEFAULT_GOAL_WITHIN_MS, description="after entry")
    match_key: bool = Field(
        default=False, description="for keyed sequences: only a goal event with the same key"
    )


class Sequence(Strict):
    """One behavior-triggered email sequence."""

    id: Name
    description: str | None = None
    group: Name | None = Field(default=None, description="caps of this group count its sends")
    entry: Entry
    key: Name = Field(default="user", description="'user', or an entry event property (cart_id)")
    exit_on: list[ExitOn] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
    cooldown: DurationMs = Field(default=0, description="after an instance ends, before "
                                 f"re-entry; at most {MAX_DURATION_TEXT}")
    caps: list[Cap] = Field(default_factory=list)
    quiet_hours: QuietHours | None = None
    holdout: float = Field(default=0.0, ge=0.0, lt=1.0, description="fraction never mailed")
    goal: Goal = Field(default_factory=Goal, description="by default: a purchase within 7d")
    exit_on_goal: bool = Field(default=False, description="the goal event ends the instance")

    @model_validator(mode="after")
    def _targets_reachable(self) -> Sequence:
        check_targets(self.steps)
        return self


# ---- segments ---------------------------------------------------------------------------------


_MAX_MINUTES = MAX_DURATION_MS // 60_000


class Trigger(Strict):
    """One event the user must have done within the last `time_in_minutes`."""

    event: Name
    page: str | None = Field(default=None, description="the event's path; * and ? wildcards")
    where: Where = Field(default_factory=dict)
    time_in_minutes: int = Field(ge=1, le=_MAX_MINUTES,
                                 description=f"at most {_MAX_MINUTES} (10 years)")
    at_least: int = Field(default=1, ge=1)


class ContentRule(Strict):
    """A template variable every member's emails get."""

    field: Name
    value: Any


class Segment(Strict):
    """Users for whom every trigger happened within its window, evaluated on every event."""

    segment: Name
    description: str | None = None
    triggers: list[Trigger] = Field(min_length=1)
    content_rules: list[ContentRule] = Field(default_factory=list)


# ---- a whole set ------------------------------------------------------------------------------


class SequenceSet(Strict):
    """Everything that runs together: the engine only ever swaps in a whole, valid set."""

    sequences: tuple[Sequence, ...] = ()
    segments: tuple[Segment, ...] = ()

"""The sequence language: typed objects that sequence and segment files load into.

A sequence file says when a user enters (an event with conditions, a segment, or inactivity),
what an instance is keyed by, its steps (send, wait, wait_for, branch, exit), what ends it at
once (exit_on), and the rules that hold back email (cooldown, caps, quiet hours, holdout).
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
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

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

__all__ = [
    "Branch",
    "BranchStep",
    "Cap",
    "Condition",
    "ContentRule",
    "EntryWhere",
    "EventEntry",
    "ExitOn",
    "ExitStep",
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


# ---- steps ------------------------------------------------------------------------------------

# Where to go: the next step, the end of the instance, or a later step by name.
Target = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


class Send(Strict):
    template: Name
    vars: dict[str, Any] = Field(default_factory=dict)


class WaitFor(Strict):
    """Wait until an event (matching the instance key) or the timeout, whichever comes first."""

    event: Name
    where: Where = Field(default_factory=dict)
    timeout: DurationMs
    match_key: bool = True
    emit: Name | None = Field(
        default=None,
        description="event the engine emits into the user's stream on timeout; by default "
        "cart_abandonment when the sequence enters on cart_add, checkout_abandonment on "
        "checkout_start, browse_abandonment on product_view, else none",
    )


class Branch(Strict):
    if_: list[Condition] = Field(alias="if", min_length=1)
    then: Target = "next"
    else_: Target = Field(default="next", alias="else")


class _Step(Strict):
    name: Name | None = None


class SendStep(_Step):
    send: Send


class WaitStep(_Step):
    wait: DurationMs


class WaitForStep(_Step):
    wait_for: WaitFor
    on_event: Target = "next"
    on_timeout: Target = "next"


class BranchStep(_Step):
    branch: Branch


class ExitStep(_Step):
    exit: Literal[True] = True


_STEP_KINDS = ("send", "wait_for", "wait", "branch", "exit")


def _step_kind(value: Any) -> str | None:
    if value == "exit":
        return "=exit"
    if isinstance(value, dict):
        present = [k for k in _STEP_KINDS if k in value]
        return f"={present[0]}" if len(present) == 1 else None
    return None


def _bare_exit(value: Any) -> Any:
    return {"exit": True} if value == "exit" else value


Step = Annotated[
    Annotated[SendStep, Tag("=send")]
    | Annotated[WaitStep, Tag("=wait")]
    | Annotated[WaitForStep, Tag("=wait_for")]
    | Annotated[BranchStep, Tag("=branch")]
    | Annotated[ExitStep, Tag("=exit")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step has exactly one of: send, wait, wait_for, branch, exit",
    ),
    BeforeValidator(_bare_exit),
]


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

    @model_validator(mode="after")
    def _targets_exist_and_point_forward(self) -> Sequence:
        position: dict[str, int] = {}
        for i, step in enumerate(self.steps):
            if step.name is not None:
                if step.name in position:
                    raise _located_error(("steps", i, "name"),
                                         f"step name {step.name!r} is used twice")
                position[step.name] = i
        for i, step in enumerate(self.steps):
            for at, target in _targets(step):
                if target in ("next", "exit"):
                    continue
                if target not in position:
                    raise _located_error(("steps", i, *at), f"no step is named {target!r}")
                if position[target] <= i:
                    raise _located_error(("steps", i, *at),
                                         f"{target!r} is not a later step (jumps go forward)")
        return self


def _located_error(at: tuple[int | str, ...], message: str) -> PydanticCustomError:
    """A model-level error that still says where it is: `ctx["at"]` is the path to the field."""
    return PydanticCustomError("sequence_rule", message, {"at": at})


def _targets(step: Any) -> list[tuple[tuple[str, ...], str]]:
    if isinstance(step, WaitForStep):
        return [(("on_event",), step.on_event), (("on_timeout",), step.on_timeout)]
    if isinstance(step, BranchStep):
        return [(("branch", "then"), step.branch.then), (("branch", "else"), step.branch.else_)]
    return []


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

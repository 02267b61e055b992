"""The shared pieces of the sequence language: the strict base of every model, durations and
names, and conditions over event properties and recent events (what an entry's `if`, a
branch, an exit_on and a segment's triggers are built of)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    model_validator,
)

from server.sequences.durations import (
    DURATION_PATTERN,
    MAX_DURATION_CHARS,
    MAX_DURATION_TEXT,
    parse_duration_ms,
)

__all__ = [
    "Condition",
    "DurationMs",
    "EntryWhere",
    "Match",
    "Name",
    "Operators",
    "ScoreCondition",
    "SegmentMember",
    "Signal",
    "Strict",
    "Where",
    "tag_by_key",
]


DurationMs = Annotated[
    int,
    BeforeValidator(parse_duration_ms),
    WithJsonSchema({
        "type": "string",
        "pattern": DURATION_PATTERN,
        "maxLength": MAX_DURATION_CHARS,
        "description": f"a number and a unit (ms, s, m, h, d, w), at most {MAX_DURATION_TEXT}",
        "examples": ["30m", "7d"],
    }),
]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=100)]


class Strict(BaseModel):
    """Unknown keys are errors: a typo must not silently become a default."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ---- matching event properties -------------------------------------------------------------


class Operators(Strict):
    """Comparisons for one property; every one given must hold."""

    eq: str | float | bool | None = None
    ne: str | float | bool | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    in_: list[str | float] | None = Field(default=None, alias="in")
    glob: str | None = Field(default=None, description="shell-style pattern: * and ? wildcards")
    exists: bool | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Operators:
        if not self.model_fields_set:
            raise ValueError("give at least one of eq, ne, gt, gte, lt, lte, in, glob, exists")
        return self


# A plain string with * or ? is a glob ("/product/*"); other plain values compare equal.
Match = str | bool | float | Operators
Where = dict[str, Match]


class Signal(Strict):
    """An event the user did, at least (or at most) so many times, within a window ending now.

    `{event: scroll, where: {path: "/product/*", depth_pct: {gte: 70}}, within: 30m}` holds when
    the user scrolled 70% down a product page in the last 30 minutes.
    """

    event: Name
    where: Where = Field(default_factory=dict)
    within: DurationMs
    at_least: int | None = Field(default=None, ge=1)
    at_most: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_bound(self) -> Signal:
        if self.at_least is not None and self.at_most is not None and self.at_most < self.at_least:
            raise ValueError("at_most is below at_least: the condition could never hold")
        return self


class ScoreBounds(Strict):
    at_least: float | None = None
    at_most: float | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> ScoreBounds:
        if self.at_least is None and self.at_most is None:
            raise ValueError("give at_least, at_most or both")
        if (self.at_least is not None and self.at_most is not None
                and self.at_most < self.at_least):
            raise ValueError("at_most is below at_least: the condition could never hold")
        return self


class ScoreCondition(Strict):
    """The user's lead score now (`[scoring]` in the server's config) is within bounds."""

    score: ScoreBounds


class SegmentMember(Strict):
    """The user is in the named segment now."""

    segment: Name


class EntryWhere(Strict):
    """The event that started this instance has these properties (branch steps only)."""

    entry_where: Where


# Discriminator tags are spelled with "=" so they can never be mistaken for a key when an
# error's location is walked back to its line (loading.py).
def tag_by_key(keys: tuple[str, ...], default: str) -> Callable[[Any], str | None]:
    """A mapping's kind: the first of `keys` it has, else `default`; None for a non-mapping."""

    def kind(value: Any) -> str | None:
        if not isinstance(value, dict):
            return None
        return "=" + next((k for k in keys if k in value), default)

    return kind


_condition_kind = tag_by_key(("segment", "entry_where", "score"), "event")


Condition = Annotated[
    Annotated[Signal, Tag("=event")]
    | Annotated[SegmentMember, Tag("=segment")]
    | Annotated[EntryWhere, Tag("=entry_where")]
    | Annotated[ScoreCondition, Tag("=score")],
    Discriminator(
        _condition_kind,
        custom_error_type="condition_kind",
        custom_error_message="a condition is a mapping: {event, within, ...}, {segment}, "
        "{entry_where} or {score}",
    ),
]

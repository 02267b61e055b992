"""What the engine decides: frozen records the caller carries out (send) or counts (the rest)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Action", "Assigned", "Converted", "Entered", "Exited", "ScoreChanged", "Send",
           "Suppressed"]


@dataclass(frozen=True, slots=True)
class Entered:
    """An instance started. `cohort`: treated (mailed), holdout (the sequence's own holdout)
    or global_holdout (the site's): the held-out go through the steps without being mailed."""

    sequence: str
    key: str
    at_ms: int
    cohort: str


@dataclass(frozen=True, slots=True)
class Exited:
    """An instance ended: `completed` (ran out of steps), `exit` (an exit step or target),
    `exit_on` (an exit_on event), `goal` (its goal, with exit_on_goal) or `removed` (its
    sequence is no longer loaded)."""

    sequence: str
    key: str
    at_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class Send:
    """Send `template` to the user now. `message_key` is unique per (user, instance, step) and
    stable across replays, so a dispatcher can derive a deterministic Message-ID from it."""

    sequence: str
    key: str
    step: int
    template: str
    vars: Mapping[str, Any]
    at_ms: int
    message_key: str


@dataclass(frozen=True, slots=True)
class Suppressed:
    """A send that was decided against: `reason` is cap, holdout, global_holdout, unverified,
    unsubscribed or bounced. The instance moved on as if it had sent."""

    sequence: str
    key: str
    step: int
    template: str
    at_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class Assigned:
    """An instance reached the sequence's split and went down `arm`."""

    sequence: str
    key: str
    at_ms: int
    arm: str
    cohort: str


@dataclass(frozen=True, slots=True)
class Converted:
    """An instance's goal happened within its window (once per instance). `sent`: the last
    email of the instance before it, `clicked`: the last one clicked, as (step, template, at);
    `first_sent_ms`: when its first email went. None where there was none."""

    sequence: str
    key: str
    at_ms: int
    entered_ms: int
    cohort: str
    arm: str
    sent: tuple[int, str, int] | None
    clicked: tuple[int, str, int] | None
    first_sent_ms: int | None


@dataclass(frozen=True, slots=True)
class ScoreChanged:
    """The user's lead score took them from band `previous` to `band` ("" below them all)."""

    at_ms: int
    previous: str
    band: str
    score: float
    sequence: str = ""  # none: the score is the user's, not a sequence's


Action = Entered | Exited | Send | Suppressed | Assigned | Converted | ScoreChanged

"""What the engine decides: frozen records the caller carries out (send) or counts (the rest)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Action", "Entered", "Exited", "Send", "Suppressed"]


@dataclass(frozen=True, slots=True)
class Entered:
    sequence: str
    key: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class Exited:
    """An instance ended: `completed` (ran out of steps), `exit` (an exit step or target),
    `exit_on` (an exit_on event), or `removed` (its sequence is no longer loaded)."""

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
    """A send that was decided against: `reason` is cap, holdout, unverified, unsubscribed or
    bounced. The instance moved on as if it had sent."""

    sequence: str
    key: str
    step: int
    template: str
    at_ms: int
    reason: str


Action = Entered | Exited | Send | Suppressed

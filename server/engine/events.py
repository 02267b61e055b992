"""What the engine consumes: a named event at an instant, with flat properties."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

__all__ = ["ENGINE_EVENTS", "Event", "PropValue"]

PropValue = str | int | float | bool

# Events the engine itself puts into a user's stream; sequences and segments may use them.
ENGINE_EVENTS = frozenset({
    "email_sent",            # a send was decided and not suppressed (props: sequence, template)
    "cart_abandonment",      # a wait_for in a sequence entered on cart_add timed out
    "checkout_abandonment",  # ... entered on checkout_start
    "browse_abandonment",    # ... entered on product_view
})


_NO_PROPS: Mapping[str, PropValue] = MappingProxyType({})


class Event(NamedTuple):
    """One thing a user did (or that happened to them), at `at_ms` milliseconds since the epoch.

    `tz` is the user's IANA time zone when the source knows it. Events the engine reads for the
    user's mailability: `identify` (prop `verified`: bool), `unsubscribe`, `email_bounce`,
    `resubscribe` (an operator lifted a suppression).
    A named tuple: immutable, and cheap to make by the million in a backtest.
    """

    name: str
    at_ms: int
    props: Mapping[str, PropValue] = _NO_PROPS
    tz: str | None = None

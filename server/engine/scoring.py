"""The lead score of one user: points from events, halving every half-life.

score(t) = sum of points_i * 2^(-(t - t_i) / half_life). The state keeps only the score at its
last change and when (`score`, `score_ms`): decaying that value to t gives the sum exactly, so
a user's score costs two numbers whatever their history. The band is the highest whose floor
the score reaches ("" below them all). A band is left either way: by points (at the event) or by
decay (at the instant the score falls below the band's floor, a timer: `score_due_ms`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from server.engine.matching import Predicate
from server.engine.rules import ScoringRules
from server.engine.state import UserState

__all__ = ["band_of", "score_at", "score_decayed", "score_event", "set_score",
           "when_band_falls"]


def score_at(state: UserState, scoring: ScoringRules, t: int) -> float:
    if not state.score:
        return 0.0
    return float(state.score * math.pow(2.0, -(t - state.score_ms) / scoring.half_life_ms))


def band_of(scoring: ScoringRules, value: float) -> str:
    found = ""
    for name, floor in scoring.bands:
        if value >= floor:
            found = name
    return found


def set_score(state: UserState, scoring: ScoringRules, value: float, t: int) -> str | None:
    """The score is `value` at `t`; the band the user left when it changed, else None."""
    state.score, state.score_ms = value, t
    before, state.band = state.band, band_of(scoring, value)
    state.score_due_ms = when_band_falls(state, scoring)
    return before if before != state.band else None


def when_band_falls(state: UserState, scoring: ScoringRules) -> int | None:
    """When decay next moves the score into another band. A positive score falls towards 0:
    it leaves its band's floor when that floor is above 0. A negative one rises towards 0: it
    reaches the lowest floor above it that is below 0. None when neither happens."""
    value, hl = state.score, scoring.half_life_ms
    if value > 0:
        floor = dict(scoring.bands).get(state.band)
        if floor is None or floor <= 0:
            return None
        return state.score_ms + math.floor(hl * math.log2(value / floor)) + 1
    if value < 0:
        above = [f for _, f in scoring.bands if value < f < 0]
        if not above:
            return None
        return state.score_ms + math.ceil(hl * math.log2(value / min(above)))
    return None


def score_event(state: UserState, scoring: ScoringRules,
                scores: tuple[tuple[Predicate, float], ...], props: Mapping[str, Any],
                t: int) -> str | None:
    """Add the points of every rule the event matches; the band left, if one was."""
    points = sum(value for match, value in scores if match(props))
    if not points:
        return None
    return set_score(state, scoring, score_at(state, scoring, t) + points, t)


def score_decayed(state: UserState, scoring: ScoringRules, t: int) -> str | None:
    """The score's timer at `t`: decay took it out of its band."""
    state.score_due_ms = None
    return set_score(state, scoring, score_at(state, scoring, t), t)

"""The lead score's rules, as the server's config writes them (`[scoring]`):

    [scoring]
    half_life = "14d"
    bands = { cold = 0, warm = 20, hot = 50 }
    [[scoring.rules]]
    event = "scroll"
    where = { path = "/product/*", depth_pct = { gte = 70 } }
    points = 2

A matching event adds its points (negative ones take away); the score halves every
`half_life`: score(t) = sum of points_i * 2^(-(t - t_i) / half_life). A user is in the highest
band whose floor the score reaches (none below the lowest); crossing into another band, either
way, is a `score_changed` event. The engine keeps it (server/engine/scoring.py).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from server.sequences.conditions import DurationMs, Name, Strict, Where

__all__ = ["ScoreRule", "Scoring"]


class ScoreRule(Strict):
    """Points for each event of this name with these properties."""

    event: Name
    where: Where = Field(default_factory=dict)
    points: float = Field(ge=-10_000, le=10_000)


class Scoring(Strict):
    half_life: DurationMs
    bands: dict[Name, float] = Field(default_factory=dict)
    rules: list[ScoreRule] = Field(default_factory=list)

    @field_validator("half_life")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("half_life must be longer than 0")
        return value

    @field_validator("bands")
    @classmethod
    def _distinct_floors(cls, value: dict[str, float]) -> dict[str, float]:
        if len(set(value.values())) != len(value):
            raise ValueError("two bands share a floor")
        return value

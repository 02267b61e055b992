"""Measuring whether a sequence works: rates, intervals and comparisons of proportions (a
Wilson interval for one rate; for treatment against control, Newcombe's interval for the
difference, the log interval for the ratio and the pooled z-test), in pure Python."""

from server.measure.proportions import (
    MIN_TRIALS,
    Comparison,
    compare,
    newcombe,
    rate,
    ratio_interval,
    two_proportion_p_value,
    wilson,
)

__all__ = [
    "MIN_TRIALS",
    "Comparison",
    "compare",
    "newcombe",
    "rate",
    "ratio_interval",
    "two_proportion_p_value",
    "wilson",
]

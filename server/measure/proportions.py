"""Proportions: the rate of a yes/no outcome (opened, clicked, bought), its interval, and the
comparison of two rates, treatment (1) minus control (2).

Counts go in, floats come out. Every interval is a normal (score or log) approximation:
- one rate: the Wilson score interval, which stays inside [0, 1] and behaves at 0 and n
  successes, unlike the textbook p ± z·se (Wald) interval;
- a difference of rates: Newcombe's hybrid score interval (method 10 of his 1998 paper),
  built from the two Wilson intervals, so it inherits their behaviour at the extremes;
- a ratio of rates: the log (Katz) interval, undefined when either arm has no successes;
- a test of "no difference": the two-sided pooled two-proportion z-test.
A value that does not exist (a rate of no trials, a ratio over a zero rate) is None, never an
exception; only impossible counts (negative, or more successes than trials) raise ValueError.
`compare` bundles all of it at 95%, and declines ("not enough data", None) below MIN_TRIALS.
"""

import math
from dataclasses import dataclass
from statistics import NormalDist

# Fewest trials per arm for `compare`. Below about 30 the normal approximations behind these
# intervals and the z-test are not trustworthy (their coverage drifts from the nominal 95%
# and the p-value misleads), so a comparison says "not enough data" instead of a number.
MIN_TRIALS = 30


@dataclass(frozen=True, slots=True)
class Comparison:
    """Treatment minus control: `absolute` is p1 - p2 with its 95% interval `ci95`; `relative`
    is the uplift p1 / p2 - 1 with `relative_ci95` (None when a zero rate leaves it undefined);
    `p_value` is the two-sided pooled z-test of p1 == p2."""

    absolute: float
    relative: float | None
    ci95: tuple[float, float]
    relative_ci95: tuple[float, float] | None
    p_value: float


def _check(successes: int, trials: int) -> None:
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")


def _z(confidence: float) -> float:
    """The two-sided normal critical value: 1.959963984540054 for 0.95."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def rate(successes: int, trials: int) -> float | None:
    """successes / trials; None for no trials."""
    _check(successes, trials)
    return None if trials == 0 else successes / trials


def wilson(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval for one proportion (no continuity correction)."""
    _check(successes, trials)
    z = _z(confidence)
    if trials == 0:
        return None
    p = successes / trials
    z2n = z * z / trials
    center = (p + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p * (1 - p) / trials + z2n / (4 * trials)) / (1 + z2n)
    # At 0 (or all) successes the bound is exactly 0 (or 1); say so rather than round near it.
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == trials else min(1.0, center + half)
    return low, high


def newcombe(
    s1: int, n1: int, s2: int, n2: int, confidence: float = 0.95
) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval for p1 - p2, from the two Wilson intervals."""
    one, two = wilson(s1, n1, confidence), wilson(s2, n2, confidence)
    if one is None or two is None:
        return None
    (low1, high1), (low2, high2) = one, two
    p1, p2 = s1 / n1, s2 / n2
    return (p1 - p2 - math.hypot(p1 - low1, high2 - p2),
            p1 - p2 + math.hypot(high1 - p1, p2 - low2))


def ratio_interval(
    s1: int, n1: int, s2: int, n2: int, confidence: float = 0.95
) -> tuple[float, float] | None:
    """The log (Katz) interval for the risk ratio p1 / p2; None when either arm has no
    successes (the log of a zero rate, or its variance, is infinite)."""
    _check(s1, n1)
    _check(s2, n2)
    z = _z(confidence)
    if s1 == 0 or s2 == 0:
        return None
    log_ratio = math.log((s1 / n1) / (s2 / n2))
    half = z * math.sqrt((1 / s1 - 1 / n1) + (1 / s2 - 1 / n2))
    return math.exp(log_ratio - half), math.exp(log_ratio + half)


def two_proportion_p_value(s1: int, n1: int, s2: int, n2: int) -> float | None:
    """The two-sided p-value of the pooled two-proportion z-test; None for an arm of no trials.
    When every trial failed (or every one succeeded) the rates are equal exactly: 1.0."""
    _check(s1, n1)
    _check(s2, n2)
    if n1 == 0 or n2 == 0:
        return None
    pooled = (s1 + s2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance == 0.0:
        return 1.0
    z = (s1 / n1 - s2 / n2) / math.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2))  # 2·P(Z > |z|), accurate far into the tail


def compare(s1: int, n1: int, s2: int, n2: int, minimum: int = MIN_TRIALS) -> Comparison | None:
    """Treatment (s1 of n1) against control (s2 of n2) at 95%; None ("not enough data") when
    either arm has fewer than `minimum` trials (or none at all)."""
    _check(s1, n1)
    _check(s2, n2)
    if min(n1, n2) < max(minimum, 1):
        return None
    ci95 = newcombe(s1, n1, s2, n2)
    p_value = two_proportion_p_value(s1, n1, s2, n2)
    if ci95 is None or p_value is None:  # unreachable: both arms have trials
        return None
    ratio = ratio_interval(s1, n1, s2, n2)
    p1, p2 = s1 / n1, s2 / n2
    return Comparison(
        absolute=p1 - p2,
        relative=None if s2 == 0 else p1 / p2 - 1,
        ci95=ci95,
        relative_ci95=None if ratio is None else (ratio[0] - 1, ratio[1] - 1),
        p_value=p_value,
    )

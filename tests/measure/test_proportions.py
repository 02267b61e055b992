"""Proportions against independent references: statsmodels (Wilson, Newcombe's method 10, the
log risk-ratio interval, the pooled z-test) over a table of small, large, equal and extreme
counts, to 1e-9; Newcombe's published 1998 examples to their four decimals; and the edges
(None where a value is undefined, the minimum count of `compare`, impossible counts)."""

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.proportion import (  # type: ignore[import-untyped]
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

import server.measure
from server.measure import (
    MIN_TRIALS,
    Comparison,
    compare,
    newcombe,
    rate,
    ratio_interval,
    two_proportion_p_value,
    wilson,
)


def _near(expected: object) -> object:
    """Equal to `expected` within 1e-9, absolute or relative (the looser)."""
    return pytest.approx(expected, rel=1e-9, abs=1e-9)


CASES = [  # (s1, n1, s2, n2)
    pytest.param(56, 70, 48, 80, id="newcombe-a"),
    pytest.param(9, 10, 3, 10, id="newcombe-b"),
    pytest.param(6, 7, 2, 7, id="newcombe-c"),
    pytest.param(5, 56, 0, 29, id="newcombe-d-zero-control"),
    pytest.param(0, 10, 0, 20, id="newcombe-e-both-zero"),
    pytest.param(0, 10, 0, 10, id="both-zero-equal-n"),
    pytest.param(10, 10, 0, 20, id="all-against-none"),
    pytest.param(10, 10, 10, 10, id="both-all"),
    pytest.param(1, 1, 0, 1, id="one-trial-each"),
    pytest.param(1, 2, 1, 2, id="tiny-equal"),
    pytest.param(30, 100, 30, 100, id="equal"),
    pytest.param(0, 50, 3, 50, id="zero-treatment"),
    pytest.param(50, 50, 47, 50, id="all-treatment"),
    pytest.param(1, 1000, 0, 1000, id="rare"),
    pytest.param(999, 1000, 1000, 1000, id="near-all"),
    pytest.param(120, 1000, 100, 1000, id="moderate"),
    pytest.param(5123, 48211, 4870, 48034, id="large-unequal-n"),
    pytest.param(31234, 1_000_000, 30001, 1_000_000, id="million"),
]


@pytest.mark.parametrize(("s1", "n1", "s2", "n2"), CASES)
@pytest.mark.parametrize("confidence", [0.90, 0.95, 0.99])
def test_wilson_and_newcombe_match_statsmodels(
    s1: int, n1: int, s2: int, n2: int, confidence: float
) -> None:
    alpha = 1 - confidence
    for s, n in ((s1, n1), (s2, n2)):
        expected = proportion_confint(s, n, alpha=alpha, method="wilson")
        assert wilson(s, n, confidence) == _near(expected)
    expected = confint_proportions_2indep(s1, n1, s2, n2, method="newcomb", compare="diff",
                                          alpha=alpha)
    assert newcombe(s1, n1, s2, n2, confidence) == _near(expected)


@pytest.mark.parametrize(("s1", "n1", "s2", "n2"), CASES)
def test_ratio_interval_matches_statsmodels_where_defined(s1: int, n1: int, s2: int,
                                                          n2: int) -> None:
    if s1 == 0 or s2 == 0:  # statsmodels divides by zero here (raises ZeroDivisionError)
        assert ratio_interval(s1, n1, s2, n2) is None
        return
    expected = confint_proportions_2indep(s1, n1, s2, n2, method="log", compare="ratio")
    assert ratio_interval(s1, n1, s2, n2) == _near(expected)


@pytest.mark.parametrize(("s1", "n1", "s2", "n2"), CASES)
def test_p_value_matches_statsmodels_where_defined(s1: int, n1: int, s2: int, n2: int) -> None:
    if s1 + s2 in (0, n1 + n2):  # statsmodels computes 0 / 0 (warns, returns nan)
        assert two_proportion_p_value(s1, n1, s2, n2) == 1.0
        return
    _, expected = proportions_ztest([s1, s2], [n1, n2])
    assert two_proportion_p_value(s1, n1, s2, n2) == pytest.approx(expected, rel=1e-9, abs=0)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
       st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_any_counts_match_statsmodels(one: tuple[int, int], two: tuple[int, int]) -> None:
    (s1, n1), (s2, n2) = one, two
    assert wilson(s1, n1) == _near(proportion_confint(s1, n1, method="wilson"))
    expected = confint_proportions_2indep(s1, n1, s2, n2, method="newcomb", compare="diff")
    assert newcombe(s1, n1, s2, n2) == _near(expected)
    interval = newcombe(s1, n1, s2, n2)
    assert interval is not None
    assert -1 <= interval[0] <= s1 / n1 - s2 / n2 <= interval[1] <= 1


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Statistics in
# Medicine 17:857-872, Table I, method 3 (Wilson score, no correction); statsmodels agrees.
@pytest.mark.parametrize(
    ("s", "n", "published"),
    [(81, 263, (0.2553, 0.3662)), (15, 148, (0.0624, 0.1605)), (0, 20, (0.0, 0.1611)),
     (1, 29, (0.0061, 0.1718))],
)
def test_wilson_reproduces_newcombes_examples(s: int, n: int,
                                              published: tuple[float, float]) -> None:
    interval = wilson(s, n)
    assert interval is not None
    assert tuple(round(x, 4) for x in interval) == published


# Newcombe (1998), "Interval estimation for the difference between independent proportions:
# comparison of eleven methods", Statistics in Medicine 17:873-890, Table II, method 10;
# statsmodels agrees to these four decimals.
@pytest.mark.parametrize(
    ("s1", "n1", "s2", "n2", "published"),
    [(56, 70, 48, 80, (0.0524, 0.3339)), (9, 10, 3, 10, (0.1705, 0.8090)),
     (5, 56, 0, 29, (-0.0381, 0.1926)), (0, 10, 0, 20, (-0.1611, 0.2775)),
     (10, 10, 0, 20, (0.6791, 1.0))],
)
def test_newcombe_reproduces_his_examples(s1: int, n1: int, s2: int, n2: int,
                                          published: tuple[float, float]) -> None:
    interval = newcombe(s1, n1, s2, n2)
    assert interval is not None
    assert tuple(round(x, 4) for x in interval) == published


def test_undefined_values_are_none_not_errors() -> None:
    assert rate(0, 0) is None
    assert rate(3, 4) == 0.75
    assert wilson(0, 0) is None
    assert newcombe(0, 0, 5, 10) is None
    assert newcombe(5, 10, 0, 0) is None
    assert ratio_interval(0, 10, 5, 10) is None
    assert ratio_interval(5, 10, 0, 10) is None
    assert ratio_interval(0, 0, 5, 10) is None
    assert two_proportion_p_value(0, 0, 5, 10) is None
    assert two_proportion_p_value(5, 10, 0, 0) is None


def test_extremes_are_exact() -> None:
    z2 = 1.959963984540054**2
    none, every = wilson(0, 50), wilson(50, 50)
    assert none is not None and every is not None
    assert none[0] == 0.0 and none[1] == pytest.approx(z2 / (50 + z2))
    assert every[0] == pytest.approx(50 / (50 + z2)) and every[1] == 1.0
    assert ratio_interval(40, 40, 40, 40) == (1.0, 1.0)
    assert two_proportion_p_value(0, 40, 0, 60) == 1.0
    assert two_proportion_p_value(40, 40, 60, 60) == 1.0
    assert two_proportion_p_value(30, 100, 30, 100) == 1.0


def test_impossible_counts_and_confidences_raise() -> None:
    for call in (lambda: rate(5, 4), lambda: rate(-1, 4), lambda: wilson(0, -1),
                 lambda: newcombe(1, 2, 3, 2), lambda: ratio_interval(1, 2, -1, 2),
                 lambda: two_proportion_p_value(3, 2, 1, 2), lambda: compare(40, 30, 1, 30),
                 lambda: wilson(1, 2, confidence=1.0), lambda: wilson(1, 2, confidence=0.0)):
        with pytest.raises(ValueError):
            call()


def test_compare_is_the_functions_at_95_percent() -> None:
    result = compare(120, 1000, 100, 1000)
    ratio = ratio_interval(120, 1000, 100, 1000)
    assert result is not None and ratio is not None
    assert result.absolute == pytest.approx(0.02)
    assert result.relative == pytest.approx(0.2)
    assert result.ci95 == newcombe(120, 1000, 100, 1000, confidence=0.95)
    assert result.relative_ci95 == (ratio[0] - 1, ratio[1] - 1)
    assert result.p_value == two_proportion_p_value(120, 1000, 100, 1000)
    assert isinstance(result, Comparison)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.absolute = 0.0  # type: ignore[misc]


def test_compare_needs_minimum_trials_in_each_arm() -> None:
    assert MIN_TRIALS == 30
    assert compare(10, MIN_TRIALS - 1, 10, 1000) is None
    assert compare(10, 1000, 10, MIN_TRIALS - 1) is None
    assert compare(10, MIN_TRIALS, 10, MIN_TRIALS) is not None
    assert compare(10, 50, 10, 50, minimum=100) is None
    assert compare(1, 5, 1, 5, minimum=5) is not None
    assert compare(0, 0, 0, 0, minimum=0) is None  # no trials is never enough


def test_compare_with_a_zero_rate() -> None:
    zero_control = compare(5, 100, 0, 100)
    assert zero_control is not None
    assert zero_control.relative is None and zero_control.relative_ci95 is None
    assert zero_control.absolute == pytest.approx(0.05)
    zero_treatment = compare(0, 100, 5, 100)
    assert zero_treatment is not None
    assert zero_treatment.relative == -1.0 and zero_treatment.relative_ci95 is None
    nothing = compare(0, 100, 0, 100)
    assert nothing is not None
    assert nothing.absolute == 0.0 and nothing.p_value == 1.0 and nothing.relative is None
    assert math.isclose(nothing.ci95[1], -nothing.ci95[0])


def test_the_package_exports_its_names() -> None:
    assert sorted(server.measure.__all__) == sorted(
        ["MIN_TRIALS", "Comparison", "compare", "newcombe", "rate", "ratio_interval",
         "two_proportion_p_value", "wilson"])

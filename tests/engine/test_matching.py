"""Compiled `where` predicates and signal trackers against their plain definitions.

compile_where builds a closure per test, with shortcuts (a text property compared without
conversion, a "prefix*" glob as startswith, numeric bounds read once). Whatever the shortcut,
it must decide what the plain reading of the rules decides: a numeric rule reads the property as
a number, a text rule as text, a bool rule as a flag, a glob with fnmatch, and a missing
property matches nothing but `exists: false`. The reference below is that reading, written
without shortcuts, and Hypothesis compares the two over rules and properties of every type.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.engine.matching import compile_where
from server.engine.rules import Tracker
from server.sequences.model import Operators

_MISSING = object()


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool) or v is _MISSING or v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _as_text(v: Any) -> str | None:
    if v is _MISSING or v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _as_flag(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    text = _as_text(v)
    return {"true": True, "false": False, "1": True, "0": False}.get(text.lower()) \
        if text else None


def _equals(want: Any, v: Any) -> bool:
    if isinstance(want, bool):
        return _as_flag(v) is want
    if isinstance(want, int | float):
        return _as_number(v) == float(want)
    return _as_text(v) == want


def _globs(pattern: str, v: Any) -> bool:
    text = _as_text(v)
    return text is not None and fnmatch.fnmatchcase(text, pattern)


def _value_matches(rule: Any, v: Any) -> bool:
    if not isinstance(rule, Operators):
        if isinstance(rule, str) and ("*" in rule or "?" in rule):
            return _globs(rule, v)
        return _equals(rule, v)
    n = _as_number(v)
    checks = [
        rule.eq is None or _equals(rule.eq, v),
        rule.ne is None or (v is not _MISSING and not _equals(rule.ne, v)),
        rule.gt is None or (n is not None and n > rule.gt),
        rule.gte is None or (n is not None and n >= rule.gte),
        rule.lt is None or (n is not None and n < rule.lt),
        rule.lte is None or (n is not None and n <= rule.lte),
        rule.in_ is None or any(_equals(option, v) for option in rule.in_),
        rule.glob is None or _globs(rule.glob, v),
        rule.exists is None or (v is not _MISSING and v is not None) is rule.exists,
    ]
    return all(checks)


def plain_match(where: Mapping[str, Any], props: Mapping[str, Any]) -> bool:
    return all(_value_matches(rule, props.get(name, _MISSING)) for name, rule in where.items())


NAMES = ["path", "depth_pct", "target"]
# Small pools, so rules and properties often meet at a boundary (70 against gte 70, "a" against
# "a*").
TEXTS = st.text(alphabet="a/*?[]!1 \n", max_size=4)
BOUNDS = st.one_of(st.sampled_from([-1.0, 0.0, 1.0, 69.9, 70.0, 1000.0]),
                   st.floats(-1000, 1000))
NUMERIC_TEXTS = st.sampled_from(["70", " 70 ", "70.0", "69.9", "1e3", "-0", "1_000", "nan",
                                 "inf", ""])
FLAG_TEXTS = st.sampled_from(["true", "False", "TRUE", "0", "1", "yes"])
NUMBERS = st.one_of(st.sampled_from([-1, 0, 1, 70, 1000, 69.9, 70.0]),
                    st.integers(-1000, 1000), st.floats(allow_nan=True, allow_infinity=True))
PROP_VALUES = st.one_of(TEXTS, NUMERIC_TEXTS, FLAG_TEXTS, NUMBERS, st.booleans(), st.none())
GLOBS = st.one_of(TEXTS, st.builds(lambda stem, stars: stem + "*" * stars, TEXTS,
                                   st.integers(1, 2)))
PLAIN_RULES = st.one_of(GLOBS, NUMERIC_TEXTS, st.booleans(), BOUNDS)
EQUALS = st.one_of(TEXTS, NUMERIC_TEXTS, st.booleans(), BOUNDS)
OPERAND = {
    "eq": EQUALS, "ne": EQUALS, "gt": BOUNDS, "gte": BOUNDS, "lt": BOUNDS, "lte": BOUNDS,
    "in": st.lists(st.one_of(TEXTS, NUMERIC_TEXTS, BOUNDS), max_size=3),
    "glob": GLOBS, "exists": st.booleans(),
}
OPERATORS = st.lists(st.sampled_from(sorted(OPERAND)), min_size=1, max_size=2, unique=True).flatmap(
    lambda ops: st.fixed_dictionaries({op: OPERAND[op] for op in ops})
).map(Operators.model_validate)
RULES = st.booleans().flatmap(lambda operators: OPERATORS if operators else PLAIN_RULES)
WHERES = st.dictionaries(st.sampled_from(NAMES), RULES, max_size=2)


def _near(rule: Any) -> st.SearchStrategy[Any]:
    """Property values at the edge of what `rule` accepts: its own value in every type a
    source may send, and text that starts like its pattern."""
    if isinstance(rule, Operators):
        operands = [v for v in (rule.eq, rule.ne, rule.gt, rule.gte, rule.lt, rule.lte,
                                rule.glob, *(rule.in_ or ())) if v is not None]
        return st.one_of([_near(v) for v in operands]) if operands else PROP_VALUES
    if isinstance(rule, bool):
        return st.sampled_from([rule, not rule, str(rule).lower(), str(int(rule))])
    if isinstance(rule, int | float):
        values: list[Any] = [rule, str(rule), f"{rule:g}", f" {rule} "]
        if float(rule).is_integer():
            values += [int(rule), str(int(rule))]
        return st.sampled_from(values)
    return st.one_of(st.just(rule), st.builds(lambda tail: rule.rstrip("*?") + tail, TEXTS))


@st.composite
def where_and_props(draw: st.DrawFn) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    where = draw(WHERES)
    near = {name: st.one_of(_near(rule), PROP_VALUES) for name, rule in where.items()}
    others = {name: PROP_VALUES for name in NAMES if name not in where}
    props = st.fixed_dictionaries(near, optional=others)
    many = draw(st.lists(props | st.fixed_dictionaries({}, optional={**near, **others}),
                         min_size=1, max_size=8))
    return where, many


@settings(max_examples=300, deadline=None)
@given(where_and_props())
def test_compiled_where_decides_what_the_plain_reading_decides(case):
    where, many_props = case
    predicate = compile_where(where)
    for props in many_props:
        assert predicate(props) is plain_match(where, props), (where, props)


GRID_RULES = [70.0, "70", True, "a*", "?0", {"gte": 70}, {"gt": 70}, {"lt": 70}, {"lte": 70},
              {"eq": 70}, {"ne": 70}, {"eq": "a"}, {"ne": "a"}, {"gte": 70, "lt": 100},
              {"in": [70, "a"]}, {"exists": True}, {"exists": False}, {"glob": "7*"},
              {"eq": True}, {"eq": False}]
GRID_VALUES = ["70", " 70 ", "70.0", "69.9", "70.1", "7e1", 70, 70.0, 69, 71, True, False, None,
               "", "a", "a\nb", "abc", "true", "0", "nan", float("nan"), "1_000", 10**6]


@pytest.mark.parametrize("rule", GRID_RULES, ids=str)
def test_every_rule_at_its_boundaries(rule):
    where = {"p": Operators.model_validate(rule) if isinstance(rule, dict) else rule}
    predicate = compile_where(where)
    for props in [{}, *({"p": value} for value in GRID_VALUES)]:
        assert predicate(props) is plain_match(where, props), props


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("/product/*", "/product/", True),
        ("/product/*", "/product/a\nb", True),  # fnmatch's * crosses newlines
        ("/product/*", "/products", False),
        ("/product/**", "/product/x", True),
        ("*", "", True),
        ("card:*", 5, False),
        ("1*", 12, True),  # a number read as text
        ("t*", True, True),  # a flag read as text: "true"
        ("[ab]*", "b-side", True),  # a class is not a plain prefix
        ("a?*", "a", False),
    ],
)
def test_globs(pattern, value, expected):
    assert compile_where({"p": pattern})({"p": value}) is expected


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 100), max_size=8), st.integers(0, 120), st.integers(0, 4),
       st.integers(0, 60), st.booleans())
def test_tracker_keeps_what_the_definition_keeps(stamps, at, keep, horizon_ms, seen_before):
    """The last `keep` stamps, dropping from the oldest end while there are too many or the
    oldest is at or before the horizon; stamps need not be in order."""
    tracker = Tracker("t", "scroll", lambda props: True, keep, horizon_ms, "scroll")
    signals = {"t": list(stamps)} if seen_before else {}
    expected = (list(stamps) if seen_before else []) + [at]
    while expected and (len(expected) > keep or expected[0] <= at - horizon_ms):
        expected.pop(0)
    tracker.record(signals, at)
    assert signals["t"] == expected

"""Property matching: a sequence file's `where` compiled once into a fast predicate.

Sources disagree on types (a CSV gives every property as text, JSON gives numbers), so values
are compared by what the rule asks for: a numeric rule reads the property as a number, a text
rule reads it as text, and a text rule with * or ? is a glob. A missing property matches
nothing but `exists: false`.

Predicates run for nearly every event, so each test is one closure over the property it reads,
built for its case: text (the common case, as CSV gives it) is compared without a conversion
helper, a glob that is a plain prefix followed by * is a `startswith`, numeric bounds read the
number once, and a `where` of one or two properties calls its tests directly, in
property-name order.
"""

from __future__ import annotations

import fnmatch
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from server.sequences.model import Match, Operators

__all__ = ["Predicate", "compile_where", "props_match", "read_flag"]

Predicate = Callable[[Mapping[str, Any]], bool]
_Compare = Callable[[float, float], bool]
_MISSING = object()
_GLOB_SPECIALS = frozenset("*?[")
_FLAGS = {"true": True, "false": False, "1": True, "0": False}


def _always(_props: Mapping[str, Any]) -> bool:
    return True


def compile_where(where: Mapping[str, Match]) -> Predicate:
    """A predicate that holds when every listed property matches."""
    if not where:
        return _always
    tests = [_compile_value(name, value) for name, value in sorted(where.items())]
    return _every(tests)


def props_match(where: Mapping[str, Match], props: Mapping[str, Any]) -> bool:
    return compile_where(where)(props)


def _every(tests: list[Predicate]) -> Predicate:
    if len(tests) == 1:
        return tests[0]
    if len(tests) == 2:
        first, second = tests
        return lambda props: first(props) and second(props)
    return lambda props: all(test(props) for test in tests)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is _MISSING or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    if value is _MISSING or value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def read_flag(value: Any) -> bool | None:
    """A boolean property as sources send it: true/false, 1/0, or their text."""
    if isinstance(value, bool):
        return value
    text = _text(value)
    return _FLAGS.get(text.lower()) if text else None


def _compile_value(name: str, value: Match) -> Predicate:
    if isinstance(value, Operators):
        return _compile_operators(name, value)
    if isinstance(value, str) and ("*" in value or "?" in value):
        return _globbed(name, value)
    return _equals(name, value)


def _compile_operators(name: str, ops: Operators) -> Predicate:
    tests: list[Predicate] = []
    if ops.eq is not None:
        tests.append(_equals(name, ops.eq))
    if ops.ne is not None:
        eq = _equals(name, ops.ne)
        tests.append(lambda props: props.get(name, _MISSING) is not _MISSING and not eq(props))
    limits: list[tuple[float | None, _Compare]] = [
        (ops.gt, operator.gt), (ops.gte, operator.ge),
        (ops.lt, operator.lt), (ops.lte, operator.le),
    ]
    bounds = [(compare, float(bound)) for bound, compare in limits if bound is not None]
    if len(bounds) == 1:
        tests.append(_compared(name, *bounds[0]))
    elif bounds:
        tests.append(_within(name, bounds))
    if ops.in_ is not None:
        options = [_equals(name, option) for option in ops.in_]
        tests.append(lambda props: any(option(props) for option in options))
    if ops.glob is not None:
        tests.append(_globbed(name, ops.glob))
    if ops.exists is not None:
        present = ops.exists
        tests.append(lambda props: (
            (v := props.get(name, _MISSING)) is not _MISSING and v is not None) is present)
    return _every(tests)


def _equals(name: str, want: str | float | bool) -> Predicate:
    if isinstance(want, bool):
        return lambda props: read_flag(props.get(name, _MISSING)) is want
    if isinstance(want, int | float):
        return _compared(name, operator.eq, float(want))

    def test(props: Mapping[str, Any]) -> bool:
        v = props.get(name, _MISSING)
        return v == want if type(v) is str else _text(v) == want

    return test


def _globbed(name: str, pattern: str) -> Predicate:
    stem = pattern.rstrip("*")
    if stem != pattern and not _GLOB_SPECIALS & set(stem):
        # "prefix*": fnmatch's * also matches newlines, so this is exactly a prefix test.
        def prefixed(props: Mapping[str, Any]) -> bool:
            v = props.get(name, _MISSING)
            if type(v) is str:
                return v.startswith(stem)
            text = _text(v)
            return text is not None and text.startswith(stem)

        return prefixed
    match = re.compile(fnmatch.translate(pattern)).match

    def globbed(props: Mapping[str, Any]) -> bool:
        v = props.get(name, _MISSING)
        if type(v) is str:
            return match(v) is not None
        text = _text(v)
        return text is not None and match(text) is not None

    return globbed


def _compared(name: str, compare: _Compare, bound: float) -> Predicate:
    """The property read as a number, compared with `bound`; False when it is not a number."""
    if compare is operator.ge:  # the usual bound ("at least"), without the call to `compare`
        def at_least(props: Mapping[str, Any]) -> bool:
            v = props.get(name, _MISSING)
            if type(v) is str:
                try:
                    return float(v) >= bound
                except ValueError:
                    return False
            number = _number(v)
            return number is not None and number >= bound

        return at_least

    def test(props: Mapping[str, Any]) -> bool:
        v = props.get(name, _MISSING)
        if type(v) is str:
            try:
                n = float(v)
            except ValueError:
                return False
            return compare(n, bound)
        number = _number(v)
        return number is not None and compare(number, bound)

    return test


def _within(name: str, bounds: list[tuple[_Compare, float]]) -> Predicate:
    """Several bounds on one property (gte and lt, say): the number is read once."""

    def test(props: Mapping[str, Any]) -> bool:
        n = _number(props.get(name, _MISSING))
        return n is not None and all(compare(n, bound) for compare, bound in bounds)

    return test


def key_text(value: Any) -> str | None:
    """An instance key as text: the same cart id reads the same from CSV, JSON or protobuf.
    None when there is no key: the property is absent or empty (protobuf sends an absent
    string as "", and an empty CSV cell reads so)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)

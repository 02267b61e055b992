"""Property matching: a sequence file's `where` compiled once into a fast predicate.

Sources disagree on types (a CSV gives every property as text, JSON gives numbers), so values
are compared by what the rule asks for: a numeric rule reads the property as a number, a text
rule reads it as text, and a text rule with * or ? is a glob. A missing property matches
nothing but `exists: false`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from typing import Any

from server.sequences.model import Match, Operators

__all__ = ["Predicate", "compile_where", "props_match", "read_flag"]

Predicate = Callable[[Mapping[str, Any]], bool]
_Test = Callable[[Any], bool]
_MISSING = object()


def _always(_props: Mapping[str, Any]) -> bool:
    return True


def compile_where(where: Mapping[str, Match]) -> Predicate:
    """A predicate that holds when every listed property matches."""
    if not where:
        return _always
    tests = [(name, _compile_value(value)) for name, value in sorted(where.items())]

    def predicate(props: Mapping[str, Any]) -> bool:
        return all(test(props.get(name, _MISSING)) for name, test in tests)

    return predicate


def props_match(where: Mapping[str, Match], props: Mapping[str, Any]) -> bool:
    return compile_where(where)(props)


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
    return {"true": True, "false": False, "1": True, "0": False}.get(text.lower()) if text else None


def _equals(want: str | float | bool) -> _Test:
    if isinstance(want, bool):
        return lambda v: read_flag(v) is want
    if isinstance(want, int | float):
        number = float(want)
        return lambda v: _number(v) == number
    return lambda v: _text(v) == want


def _globbed(pattern: str) -> _Test:
    rx = re.compile(fnmatch.translate(pattern))
    return lambda v: (t := _text(v)) is not None and rx.match(t) is not None


def _compile_value(value: Match) -> _Test:
    if isinstance(value, Operators):
        return _compile_operators(value)
    if isinstance(value, str) and ("*" in value or "?" in value):
        return _globbed(value)
    return _equals(value)


def _compile_operators(ops: Operators) -> _Test:
    tests: list[_Test] = []
    if ops.eq is not None:
        tests.append(_equals(ops.eq))
    if ops.ne is not None:
        eq = _equals(ops.ne)
        tests.append(lambda v: v is not _MISSING and not eq(v))
    for bound, compare in (
        (ops.gt, float.__gt__), (ops.gte, float.__ge__),
        (ops.lt, float.__lt__), (ops.lte, float.__le__),
    ):
        if bound is not None:
            tests.append(_compared(compare, float(bound)))
    if ops.in_ is not None:
        options = [_equals(option) for option in ops.in_]
        tests.append(lambda v: any(t(v) for t in options))
    if ops.glob is not None:
        tests.append(_globbed(ops.glob))
    if ops.exists is not None:
        present = ops.exists
        tests.append(lambda v: (v is not _MISSING and v is not None) is present)
    return lambda v: all(t(v) for t in tests)


def _compared(compare: Callable[[float, float], bool], bound: float) -> _Test:
    def test(v: Any) -> bool:
        n = _number(v)
        return n is not None and compare(n, bound)

    return test

"""Variants for a backtest side by side: `--variant NAME=PATH` (a sequence set of its own) and
`--vary 'SEQUENCE:FIELD=V1,V2,...'` (the base set with one field of one sequence set to each
value in turn). Each variant is replayed alone over the same history, so its figures are the
ones a backtest of that set alone gives.

FIELD is a dotted path into the sequence as its file writes it, with [i] for list items:
`entry.if[1].within`, `steps[0].wait_for.timeout`, `holdout`. Every part but the last must
exist; the last may be a key the file leaves to its default. Each value is read as YAML would
read it (`30m` a string, `10` a number, `true` a flag) and validated like the file itself.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from server.errors import InvalidSequence, PulsewireError
from server.sequences import SequenceSet
from server.sequences.loading import load_paths

__all__ = ["InvalidVariant", "Variant", "Vary", "build_variants", "parse_variant", "parse_vary"]

_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


class InvalidVariant(PulsewireError):
    """A --variant or --vary that cannot make a sequence set; the message says why."""


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    sequence_set: SequenceSet


@dataclass(frozen=True, slots=True)
class Vary:
    sequence: str
    field: str
    path: tuple[str | int, ...]
    values: tuple[str, ...]


def parse_variant(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise ValueError(f"{text!r} is not NAME=PATH")
    return name, Path(path)


def parse_vary(text: str) -> Vary:
    head, sep, values = text.partition("=")
    sequence, colon, field = head.partition(":")
    if not sep or not colon or not sequence or not field or not values:
        raise ValueError(f"{text!r} is not SEQUENCE:FIELD=V1,V2,...")
    return Vary(sequence, field, _path(field), tuple(v.strip() for v in values.split(",")))


def _path(field: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    for dotted in field.split("."):
        pos = 0
        while pos < len(dotted):
            found = _PART.match(dotted, pos)
            if found is None or (pos == 0) != (found.group(1) is not None):
                raise ValueError(f"{field!r} is not a field path like steps[0].wait_for.timeout")
            parts.append(found.group(1) if found.group(1) is not None else int(found.group(2)))
            pos = found.end()
    return tuple(parts)


def build_variants(base: list[Path], named: list[tuple[str, Path]],
                   varies: list[Vary]) -> list[Variant]:
    """The --vary variants of the base set (each value in turn), then the --variant sets."""
    out: list[Variant] = []
    for vary in varies:
        for value in vary.values:
            name = f"{vary.sequence}:{vary.field}={value}"
            out.append(Variant(name, _load(name, base, _Setter(vary, value))))
    out += [Variant(name, _load(name, [path], None)) for name, path in named]
    return out


def _load(name: str, paths: list[Path], edit: _Setter | None) -> SequenceSet:
    try:
        sequence_set, _ = load_paths(paths, edit)
    except InvalidSequence as err:
        raise InvalidVariant(f"variant {name}: " + "; ".join(str(p) for p in err.problems)
                             ) from None
    except InvalidVariant as err:
        raise InvalidVariant(f"variant {name}: {err}") from None
    if edit is not None and not edit.found:
        raise InvalidVariant(f"variant {name}: no sequence {edit.vary.sequence!r} in "
                             f"{', '.join(str(p) for p in paths)}")
    return sequence_set


class _Setter:
    """Sets the field in the one document whose id is the sequence's."""

    def __init__(self, vary: Vary, value: str) -> None:
        self.vary = vary
        self.value: Any = yaml.safe_load(value) if value else ""
        self.found = False

    def __call__(self, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("id") != self.vary.sequence:
            return data
        self.found = True
        changed = copy.deepcopy(data)
        holder: Any = changed
        path = self.vary.path
        for i, part in enumerate(path[:-1]):
            holder = _step_into(holder, part, path[:i + 1])
        last = path[-1]
        if isinstance(last, int):
            _step_into(holder, last, path)
        elif not isinstance(holder, dict):
            raise InvalidVariant(f"the sequence's {_text(path[:-1])} is not a mapping")
        holder[last] = self.value
        return changed


def _step_into(holder: Any, part: str | int, upto: tuple[str | int, ...]) -> Any:
    if isinstance(part, int) and isinstance(holder, list) and part < len(holder):
        return holder[part]
    if isinstance(part, str) and isinstance(holder, dict) and part in holder:
        return holder[part]
    raise InvalidVariant(f"the sequence has no {_text(upto)}")


def _text(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


"""Loading sequence and segment files (YAML or JSON) with every fault located by file, line, field.

A file is read into data and YAML nodes (reading.py: bounded, so any input is answered within a
second), and the data is validated by pydantic; an error's location (a path of keys and
indexes) is walked back through the nodes, which keep their line numbers, to the line at fault.
A set loads only when every file in it is valid; nothing partial ever reaches the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.nodes import Node, ScalarNode

from server.errors import InvalidSequence, Problem
from server.sequences.model import (
    BranchStep,
    EventEntry,
    Segment,
    SegmentEntry,
    SegmentMember,
    Sequence,
    SequenceSet,
)
from server.sequences.reading import read_document
from server.sequences.steps import placed_steps

__all__ = ["SEQUENCE_SUFFIXES", "load_file", "load_paths"]

SEQUENCE_SUFFIXES = (".yaml", ".yml", ".json")


def load_file(path: Path) -> Sequence | Segment:
    """One sequence or segment file; raises InvalidSequence listing every problem in it."""
    return _load(path)[0]


Edit = Callable[[Any], Any]  # a document's data, changed before it is validated


def load_paths(paths: Iterable[Path],
               edit: Edit | None = None) -> tuple[SequenceSet, dict[str, Path]]:
    """A whole set from files and directories (their *.yaml, *.yml, *.json, sorted by path,
    subdirectories included; *.schema.json files, such as the editors' schema, are not read).

    Returns the set and the file each sequence or segment id came from. Raises InvalidSequence
    with every problem of every file, and of the set as a whole (duplicate ids, references to
    segments that do not exist), so one run shows everything there is to fix.

    `edit`, when given, changes each document's data before validation (a backtest's
    `--vary` sets one field of one sequence).
    """
    files = _expand(paths)
    problems: list[Problem] = []
    sequences: list[Sequence] = []
    segments: list[Segment] = []
    origin: dict[str, Path] = {}
    nodes: dict[Path, Node] = {}
    for path in files:
        try:
            doc, nodes[path] = _load(path, edit)
        except InvalidSequence as err:
            problems.extend(err.problems)
            continue
        ident = doc.segment if isinstance(doc, Segment) else doc.id
        kind = "segment" if isinstance(doc, Segment) else "sequence"
        if ident in origin:
            field = "segment" if kind == "segment" else "id"
            line, _ = _walk(nodes[path], (field,))
            problems.append(Problem(str(path), line, field,
                                    f"{kind} {ident!r} is already defined in {origin[ident]}"))
            continue
        origin[ident] = path
        (segments if isinstance(doc, Segment) else sequences).append(doc)  # type: ignore[arg-type]
    known = {s.segment for s in segments}
    for seq in sequences:
        for loc, name in _segment_references(seq):
            if name not in known:
                path = origin[seq.id]
                line, field = _walk(nodes[path], loc)
                problems.append(Problem(str(path), line, field, f"no segment is named {name!r}"))
    if problems:
        raise InvalidSequence(problems)
    return SequenceSet(sequences=tuple(sequences), segments=tuple(segments)), origin


def _expand(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in SEQUENCE_SUFFIXES
                                and not p.name.endswith(".schema.json") and p.is_file()))
        else:
            files.append(path)
    return files


def _load(path: Path, edit: Edit | None = None) -> tuple[Sequence | Segment, Node]:
    data, node = read_document(path)
    if edit is not None:
        data = edit(data)
    problems = _problems_of_shape(path, data, node)
    if problems or node is None:
        raise InvalidSequence(problems)
    kind = Segment if isinstance(data, dict) and "segment" in data else Sequence
    try:
        return kind.model_validate(data), node
    except ValidationError as err:
        raise InvalidSequence(_located(path, node, err)) from None


def _problems_of_shape(path: Path, data: Any, node: Node | None) -> list[Problem]:
    if not isinstance(data, dict) or node is None:
        return [Problem(str(path), 1, "", "expected a mapping (a sequence or a segment)")]
    return [
        Problem(str(path), key.start_mark.line + 1, field, "key given twice")
        for field, key in _duplicate_keys(node, "")
    ]


def _duplicate_keys(node: Node, prefix: str) -> Iterable[tuple[str, Node]]:
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            name = f"{prefix}.{key.value}" if prefix else str(key.value)
            if key.value in seen:
                yield name, key
            seen.add(key.value)
            yield from _duplicate_keys(value, name)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, f"{prefix}[{i}]")


def _located(path: Path, node: Node, err: ValidationError) -> list[Problem]:
    best: dict[tuple[int, str], tuple[int, Problem]] = {}
    keys: _KeyIndex = {}
    for error in err.errors():
        at = (error.get("ctx") or {}).get("at", ())
        line, field = _walk(node, (*error["loc"], *at), keys)
        problem = Problem(str(path), line, field, _message(error))
        depth = len(error["loc"])
        # A union reports each member's failure at the same place; keep the most specific one.
        if (line, field) not in best or depth > best[(line, field)][0]:
            best[(line, field)] = (depth, problem)
    return [p for _, p in sorted(best.values(), key=lambda dp: (dp[1].line, dp[1].field))]


# Each mapping node's keys by name, built once per node: a file with thousands of unknown keys
# gets thousands of errors, and a scan of the mapping for each would be quadratic.
_KeyIndex = dict[int, dict[Any, tuple[Node, Node]]]


def _walk(node: Node | None, loc: tuple[int | str, ...],
          keys: _KeyIndex | None = None) -> tuple[int, str]:
    """The line and dotted field a pydantic error location points at.

    Parts that are not keys of the node at hand are discriminator tags or union member names
    and are passed over, except a missing key at the end, which is named.
    """
    keys = {} if keys is None else keys
    line = node.start_mark.line + 1 if node is not None else 0
    field = ""
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            field += f"[{part}]"
        elif isinstance(node, yaml.MappingNode) and isinstance(part, str):
            match = _keys_of(node, keys).get(part)
            if match is not None:
                line = match[0].start_mark.line + 1
                node = match[1] if not last else node
                field += f".{part}" if field else part
            elif last:
                field += f".{part}" if field else part
    return line, field


def _keys_of(node: yaml.MappingNode, keys: _KeyIndex) -> dict[Any, tuple[Node, Node]]:
    if id(node) not in keys:
        first: dict[Any, tuple[Node, Node]] = {}
        for key, value in node.value:
            if isinstance(key, ScalarNode):
                first.setdefault(key.value, (key, value))
        keys[id(node)] = first
    return keys[id(node)]


_MESSAGE_CHARS = 300  # a message quotes the value at fault: a huge one is cut short


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field (see `pulsewire schema` for the fields allowed here)"
    if kind == "missing":
        return "required field is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if len(message) > _MESSAGE_CHARS:
        message = message[:_MESSAGE_CHARS] + f"... ({len(message)} characters)"
    return message


def _segment_references(seq: Sequence) -> Iterable[tuple[tuple[int | str, ...], str]]:
    """Every segment name the sequence uses, with the error location of the reference."""
    if isinstance(seq.entry, SegmentEntry):
        yield ("entry", "segment"), seq.entry.segment
    if isinstance(seq.entry, EventEntry):
        for i, cond in enumerate(seq.entry.if_):
            if isinstance(cond, SegmentMember):
                yield ("entry", "if", i, "segment"), cond.segment
    for placed in placed_steps(seq.steps):
        if isinstance(placed.step, BranchStep):
            for j, cond in enumerate(placed.step.branch.if_):
                if isinstance(cond, SegmentMember):
                    yield (*placed.loc, "branch", "if", j, "segment"), cond.segment

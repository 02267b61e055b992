"""Reading a sequence or segment file into data and YAML nodes, bounded before it is believed.

Files come from operators and reloads, so every read is bounded: at most 1 MiB of UTF-8, no
anchors, aliases or tags (a sequence file needs none, and aliases are how a small file expands
into a huge or endless one), nesting at most MAX_DEPTH deep, at most MAX_NODES keys and values,
no number longer than 100 characters. libyaml's parser scans the text at C speed (PyYAML's own,
used when PyYAML was built without libyaml, gives the same answers up to ten times slower), and
PyYAML's composer, guarded, builds the nodes, which keep their line numbers. Whatever the input,
the answer comes within a second: data and nodes, or InvalidSequence with a Problem located by
line and field like every other fault.

YAML is read with YAML 1.2 core-schema rules for plain scalars, so `on`, `no` and `21:00` stay
strings instead of turning into booleans or sexagesimal numbers. JSON is read by json, and
composed as YAML only to locate errors (the guards bound it too).
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any, Protocol

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, CollectionStartEvent, Event
from yaml.nodes import Node, ScalarNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from server.errors import InvalidSequence, Problem

__all__ = ["MAX_DEPTH", "MAX_NODES", "read_document"]

MAX_DEPTH = 64  # mappings and lists inside one another; the language needs about ten
MAX_NODES = 10_000  # keys and values in one file; the largest example has about a hundred
_MAX_FILE_BYTES = 1 << 20
_MAX_NUMBER_CHARS = 100  # past 4,300 digits, int() raises instead of reading a number
_MAX_DIRECTIVES = 10  # libyaml compares %TAG lines with each other: quadratic in their count
_DIRECTIVE = re.compile(r"^%", re.MULTILINE)
# What YAML refuses anywhere in a stream: characters outside its printable set.
_UNPRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# What a JSON string may hold raw but YAML refuses (or counts as a line break): in the copy of a
# JSON file composed only to locate errors, each becomes a space, so the lines stay the same.
# Tabs too: white space to JSON, refused by YAML for indentation.
_NOT_YAML_IN_JSON = re.compile(
    "[^\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_BOOL, _INT, _FLOAT = (f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float"))
# Explicit tags that change nothing; any other (!!binary, !!timestamp, !!python/...) is refused.
_PLAIN_TAGS = frozenset({None, "!", *(f"tag:yaml.org,2002:{t}" for t in ("str", "seq", "map"))})
_UNREAD = object()  # what json could not read


def read_document(path: Path) -> tuple[Any, Node | None]:
    """The file's data (None when it is empty) and its root node, or InvalidSequence."""
    text = _text(path)
    if path.suffix != ".json":
        return _compose(path, text, construct=True)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidSequence([Problem(str(path), err.lineno, "", err.msg)]) from None
    except (RecursionError, ValueError):
        data = _UNREAD  # nested past json's recursion limit, or a number past int()'s digits
    _, node = _compose(path, _yaml_copy_of_json(text), construct=False)
    if data is _UNREAD:  # the guards refuse all json could not read: this is a backstop
        raise InvalidSequence([Problem(str(path), 0, "", "too deeply nested or a number too long")])
    return data, node


# JSON writes a character past U+FFFF as two escaped surrogates ("\ud83d\ude00"); libyaml
# refuses those, so they become one \U escape, and a lone one becomes U+FFFD. Escaped
# backslashes are matched too, so that "\\ud83d" is left alone.
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_JSON_ESCAPE = re.compile(
    r"\\\\"  # an escaped backslash
    r"|\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"  # a surrogate pair
    r"|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"  # a lone surrogate
)


def _yaml_copy_of_json(text: str) -> str:
    """JSON text that YAML reads with the same lines and keys (only to locate errors)."""
    text = _NOT_YAML_IN_JSON.sub(" ", text)
    return _JSON_ESCAPE.sub(_yaml_escape, text) if _SURROGATE.search(text) else text


def _yaml_escape(match: re.Match[str]) -> str:
    if match.group(1) is not None:
        high, low = int(match.group(1), 16), int(match.group(2), 16)
        return f"\\U{0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00):08X}"
    return match.group() if match.group() == "\\\\" else "\\uFFFD"


def _text(path: Path) -> str:
    """The file's text; refused when it is not a regular file (a FIFO or /dev/zero named on the
    command line must not block or fill memory), larger than 1 MiB, or not UTF-8."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise InvalidSequence([Problem(str(path), 0, "", "cannot read: not a regular file")])
        with path.open("rb") as file:
            raw = file.read(_MAX_FILE_BYTES + 1)
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise InvalidSequence([Problem(str(path), 0, "", f"cannot read: {reason}")]) from None
    if len(raw) > _MAX_FILE_BYTES:
        raise InvalidSequence([Problem(str(path), 0, "", "larger than 1 MiB")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSequence([Problem(str(path), 0, "", "not UTF-8 text")]) from None


def _compose(path: Path, text: str, construct: bool) -> tuple[Any, Node | None]:
    _refuse_text(path, text)
    loader = _Yaml12Loader(_events(text))
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if construct and node is not None else None
    except _Refused as err:
        raise InvalidSequence([Problem(str(path), err.line, err.field, str(err))]) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 0
        raise InvalidSequence([Problem(str(path), line, "", str(err.problem or err))]) from None
    except yaml.YAMLError as err:
        raise InvalidSequence([Problem(str(path), 0, "", str(err))]) from None
    finally:
        loader.dispose()
    return data, node


def _refuse_text(path: Path, text: str) -> None:
    """Faults found before parsing: where libyaml would stop without a line, or take quadratic
    time."""
    bad = _UNPRINTABLE.search(text)
    if bad is not None:
        line = text.count("\n", 0, bad.start()) + 1
        raise InvalidSequence([Problem(str(path), line, "",
                                       f"character U+{ord(bad.group()):04X} is not allowed")])
    for count, directive in enumerate(_DIRECTIVE.finditer(text), 1):
        if count > _MAX_DIRECTIVES:
            line = text.count("\n", 0, directive.start()) + 1
            raise InvalidSequence([Problem(str(path), line, "",
                                           f"more than {_MAX_DIRECTIVES} YAML directives (%)")])


# ---- the parser and the guarded composer ------------------------------------------------------


class _Events(Protocol):
    """A YAML parser as the composer uses it: libyaml's or PyYAML's own."""

    def check_event(self, *choices: type[Event]) -> bool: ...
    def peek_event(self) -> Any: ...
    def get_event(self) -> Any: ...
    def dispose(self) -> None: ...


class _PurePythonEvents(Reader, Scanner, Parser):
    """PyYAML's own parser, for a PyYAML built without libyaml: the same answers, slower."""

    def __init__(self, text: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)


_LIBYAML = yaml.__with_libyaml__


def _events(text: str) -> _Events:
    if _LIBYAML:
        from yaml._yaml import CParser

        return CParser(text)
    return _PurePythonEvents(text)


class _Refused(Exception):
    """A guard refused the input at `line`, under `field`."""

    def __init__(self, line: int, field: str, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.field = field


class _Yaml12Loader(Composer, SafeConstructor, Resolver):
    """PyYAML's composer and safe constructor over a parser's events, with YAML 1.2 core-schema
    booleans and numbers, and the guards of the module docstring."""

    def __init__(self, events: _Events) -> None:
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._events = events
        self._nodes = 0
        self._path: list[str] = []  # keys and [indexes] from the root to the node at hand

    def check_event(self, *choices: type[Event]) -> bool:
        return self._events.check_event(*choices)

    def peek_event(self) -> Any:
        return self._events.peek_event()

    def get_event(self) -> Any:
        return self._events.get_event()

    def dispose(self) -> None:
        self._events.dispose()

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        part: object = index  # at run time: a list index, a mapping's key node, or None
        if isinstance(part, ScalarNode):
            self._path.append(f".{part.value}" if any(self._path) else str(part.value))
        else:
            self._path.append(f"[{part}]" if isinstance(part, int) else "")
        try:
            self._refuse(self.peek_event())
            return super().compose_node(parent, index)
        finally:
            self._path.pop()

    def compose_scalar_node(self, anchor: dict[Any, Node]) -> ScalarNode:
        node = super().compose_scalar_node(anchor)
        if node.tag in (_INT, _FLOAT) and len(node.value) > _MAX_NUMBER_CHARS:
            raise self._refused(node, f"a number longer than {_MAX_NUMBER_CHARS} characters")
        return node

    def _refuse(self, event: Any) -> None:
        if isinstance(event, AliasEvent) or event.anchor is not None:
            kind = f"an alias (*{_shown(event.anchor)})" if isinstance(event, AliasEvent) \
                else f"an anchor (&{_shown(event.anchor)})"
            raise self._refused(event, f"{kind}: sequence files allow no anchors or aliases")
        tag = getattr(event, "tag", None)
        if tag not in _PLAIN_TAGS:
            raise self._refused(event, f"a tag ({_shown(tag)}): sequence files allow no tags")
        if isinstance(event, CollectionStartEvent) and len(self._path) > MAX_DEPTH:
            raise self._refused(event, f"nested deeper than {MAX_DEPTH} levels")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise self._refused(event, f"more than {MAX_NODES} keys and values in one file")

    def _refused(self, at: Event | Node, message: str) -> _Refused:
        line = at.start_mark.line + 1 if at.start_mark is not None else 0
        return _Refused(line, "".join(self._path), message)


_YAML11_ONLY = (_BOOL, _INT, _FLOAT, "tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value")
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _YAML11_ONLY]
    for first, resolvers in Resolver.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))
_Yaml12Loader.add_implicit_resolver(_INT, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"),
                                    list("-+0123456789"))
_Yaml12Loader.add_implicit_resolver(
    _FLOAT, re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"),
    list("-+.0123456789"),
)


def _shown(value: object, limit: int = 40) -> str:
    """`value` as a message quotes it: cut short, so a 1 MiB name does not become the message."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."

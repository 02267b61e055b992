"""Fuzzing, bounded in time, of the sequence loader: random text and bytes, YAML-ish token soup,
the examples' text spliced with it, deep nesting, random documents with keys drawn from the
language's own field names, and the examples with parts replaced, removed or added, written as
YAML or JSON files. Nothing may come out but a loaded sequence or segment (with no duration past
ten years) or InvalidSequence whose problems name the file; each answer within a second (the
deadline)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from server.errors import InvalidSequence
from server.sequences import Segment, Sequence, document_schema, load_file, load_paths
from server.sequences.durations import MAX_DURATION_MS

REPO = Path(__file__).resolve().parents[2]
# Each example within the second the loader promises; the five tests in about 15 s.
FUZZ = settings(max_examples=800, deadline=timedelta(seconds=1),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _field_names(node: object) -> set[str]:
    """Every property name anywhere in the schema: the keys the language has."""
    names: set[str] = set()
    if isinstance(node, dict):
        names.update(node.get("properties") or {})
        for value in node.values():
            names |= _field_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= _field_names(value)
    return names


FIELDS = sorted(_field_names(document_schema()))
EXAMPLE_TEXTS = [p.read_text() for p in sorted((REPO / "examples").glob("se*/*"))
                 if p.suffix in (".yaml", ".json")]
EXAMPLES = [yaml.safe_load(text) for text in EXAMPLE_TEXTS]
TRICKY = ["America", "../../etc/passwd", "/etc/passwd", "Europe/Paris", "UTC", "posixrules",
          "A" * 10_000, "999999999999999999w", "3650d", "3650d1ms", "521w3d", "1h", "60x", "0s",
          "9" * 5000 + "w", "21:00", "08:00", "exit", "next", "*", "user", "cart_id", "",
          "\x00", "\u2028", "\ufeff", "é😀", "<<", "&a", "*a", "!!int", "%TAG"]
DURATIONS = st.builds("{}{}".format, st.integers(0, 5000) | st.integers(0, 10**20),
                      st.sampled_from(["ms", "s", "m", "h", "d", "w"]))
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.integers(-(10**150), 10**150),
    st.floats(), st.text(max_size=12), st.sampled_from(FIELDS), st.sampled_from(TRICKY),
    DURATIONS,
)
KEYS = st.sampled_from(FIELDS) | st.text(max_size=6)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=30,
)
TOKENS = ["[", "]", "{", "}", ",", ": ", ":", "- ", "? ", "\n", "  ", "\t", "#", "&a ", "*a",
          "&b ", "*b", "!!int ", "!!str ", "!!timestamp ", "!x ", "! ", "%YAML 1.2\n",
          "%TAG ! tag:x:\n", "---\n", "...\n", '"', "'", "\\", "|", ">", "<<: ", "~", "null",
          "true", "1", "-1", "1.5e3", "0x1F", "1:30", "9" * 120, "\\u0000", "\\ud800", "\x00",
          "\x85", "\u2028", "\ufeff", "é", "😀", *TRICKY[:12], *FIELDS]


@st.composite
def spliced_examples(draw: st.DrawFn) -> str:
    """An example file's text with a few spans cut out and tokens put in."""
    text = draw(st.sampled_from(EXAMPLE_TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 20))
        text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at + cut:]
    return text


@st.composite
def deep_texts(draw: st.DrawFn) -> tuple[str, str]:
    depth = draw(st.integers(0, 3000))
    opener, closer, suffix = draw(st.sampled_from([
        ("[", "]", ".json"), ('{"vars": ', "}", ".json"), ("[", "]", ".yaml"),
        ("{a: ", "}", ".yaml"), ("- ", "", ".yaml")]))
    if opener == "- ":  # block nesting: each level one line, indented one deeper
        return "".join(" " * i + "-\n" for i in range(min(depth, 1400))), suffix
    return opener * depth + "1" + closer * draw(st.integers(0, depth)), suffix


@st.composite
def edited_examples(draw: st.DrawFn) -> Any:
    """An example file with a few parts replaced, removed or added: most values stay plausible,
    so the edits reach the validators deep inside (durations, time zones, step targets)."""
    doc = json.loads(json.dumps(draw(st.sampled_from(EXAMPLES))))
    for _ in range(draw(st.integers(1, 3))):
        parent: Any = doc
        key = draw(st.sampled_from(sorted(doc)))
        for _ in range(draw(st.integers(0, 5))):
            child = parent[key]
            if not isinstance(child, dict | list) or not child:
                break
            parent, key = child, draw(st.sampled_from(sorted(child) if isinstance(child, dict)
                                                      else range(len(child))))
        edit = draw(st.sampled_from(["replace", "replace", "remove", "add"]))
        if edit == "remove":
            del parent[key]
        elif edit == "add" and isinstance(parent, dict):
            parent[draw(KEYS)] = draw(SCALARS | VALUES)
        else:
            parent[key] = draw(SCALARS | SCALARS | VALUES)
    return doc


def _dumped(doc: Any, as_json: bool) -> str:
    return json.dumps(doc) if as_json else yaml.safe_dump(doc, allow_unicode=True)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("fuzz")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _answer(path: Path, as_set: bool) -> None:
    start = time.perf_counter()
    try:
        if as_set:
            loaded = load_paths([path.parent])[0]
            docs: list[Any] = [*loaded.sequences, *loaded.segments]
        else:
            docs = [load_file(path)]
    except InvalidSequence as err:
        assert err.problems
        for problem in err.problems:
            assert problem.file == str(path)
            assert problem.line >= 0 and isinstance(problem.field, str) and problem.message
            assert len(problem.message) < 1000
    else:
        for doc in docs:
            assert isinstance(doc, Sequence | Segment)
            assert _longest_duration_ms(doc) <= MAX_DURATION_MS
    assert time.perf_counter() - start < 1.0


DURATION_FIELDS = {"cooldown", "wait", "timeout", "per", "within", "for_"}
USER_DATA = {"vars", "where", "entry_where", "value"}  # any value at all, durations or not


def _longest_duration_ms(node: object) -> int:
    if isinstance(node, BaseModel):
        fields = {name: getattr(node, name) for name in type(node).model_fields
                  if name not in USER_DATA}
        own = [v for k, v in fields.items() if k in DURATION_FIELDS]
        own += [v * 60_000 for k, v in fields.items() if k == "time_in_minutes"]
        return max([0, *own, *(_longest_duration_ms(v) for v in fields.values())])
    if isinstance(node, list | tuple):
        return max([0, *(_longest_duration_ms(v) for v in node)])
    return 0


def _write(scratch: Path, text: str | bytes, suffix: str) -> Path:
    for old in scratch.iterdir():
        old.unlink()
    path = scratch / f"doc{suffix}"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@settings(FUZZ, max_examples=1000)
@given(text=st.text(max_size=200) | st.lists(st.sampled_from(TOKENS), max_size=50).map("".join)
       | spliced_examples(),
       suffix=st.sampled_from([".yaml", ".json"]))
def test_random_text_is_loaded_or_refused(scratch: Path, text: str, suffix: str) -> None:
    _answer(_write(scratch, text, suffix), as_set=False)


@settings(FUZZ, max_examples=300)
@given(raw=st.binary(max_size=200), suffix=st.sampled_from([".yaml", ".json"]))
def test_random_bytes_are_loaded_or_refused(scratch: Path, raw: bytes, suffix: str) -> None:
    _answer(_write(scratch, raw, suffix), as_set=False)


@settings(FUZZ, max_examples=100)
@given(deep=deep_texts())
def test_deep_nesting_is_refused(scratch: Path, deep: tuple[str, str]) -> None:
    _answer(_write(scratch, *deep), as_set=False)


@FUZZ
@given(doc=st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=8) | VALUES,
       as_json=st.booleans())
def test_random_documents_are_loaded_or_refused(scratch: Path, doc: Any, as_json: bool) -> None:
    path = _write(scratch, _dumped(doc, as_json), ".json" if as_json else ".yaml")
    _answer(path, as_set=True)


@settings(FUZZ, max_examples=2000)
@given(doc=edited_examples(), as_json=st.booleans())
def test_edited_examples_are_loaded_or_refused(scratch: Path, doc: Any, as_json: bool) -> None:
    path = _write(scratch, _dumped(doc, as_json), ".json" if as_json else ".yaml")
    _answer(path, as_set=True)

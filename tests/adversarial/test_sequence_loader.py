"""Hostile sequence and segment files: each is answered within a second with InvalidSequence and
a Problem located by file, line and field, as any other fault; none raises anything else, runs
for minutes, or loads an absurd value (a duration past ten years, a time zone that is a directory
of the zone database). Before these guards, deep nesting raised RecursionError, an alias fan-out
ran for minutes, `America` raised IsADirectoryError, a FIFO blocked, and `!!timestamp` tags
raised AttributeError."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from server.errors import InvalidSequence, Problem
from server.sequences import Sequence, load_file, load_paths, reading

SEND = "steps:\n  - send:\n      template: t\n"
HEAD = "id: s\nentry:\n  event: go\n" + SEND  # 6 lines
JSON_HEAD = '{"id": "s", "entry": {"event": "go"}, "steps": [{"send": {"template": "t"}}]'


def _quiet(zone: str) -> str:
    return HEAD + f'quiet_hours:\n  start: "21:00"\n  end: "08:00"\n  timezone: "{zone}"\n'


def _laughs(levels: int) -> str:
    """Each anchor ten aliases of the one before: 10^levels values from a few hundred bytes."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def _wait(duration: str) -> str:
    return "id: s\nentry:\n  event: go\nsteps:\n  - wait: " + duration + "\n" + SEND[7:]


# name: (file name, text, line, field, part of the message)
REFUSED = {
    "flow-nesting-100k": ("deep.yaml", "[" * 100_000, 1, None, "nest"),
    "block-nesting-1000": ("deep-block.yaml", "".join(" " * i + "-\n" for i in range(1000)),
                           65, "[0]" * 64, "nested deeper than 64 levels"),
    "nesting-in-vars": ("deep-vars.yaml", HEAD + "      vars:\n        x: " + "[" * 70 + "]" * 70,
                        8, "steps[0].send.vars.x" + "[0]" * 59, "nested deeper than 64 levels"),
    "json-arrays-100k": ("deep.json", "[" * 100_000 + "]" * 100_000, 1, None, "nest"),
    "json-arrays-unclosed": ("open.json", "[" * 100_000, 1, None, "nest"),
    "json-objects-50k": ("deep-objects.json", '{"a": ' * 50_000 + "1" + "}" * 50_000,
                         1, "a" + ".a" * 63, "nested deeper than 64 levels"),
    "billion-laughs": ("laughs.yaml", _laughs(9) + HEAD, 1, "l0", "anchor (&l0)"),
    "laughs-in-vars": ("laughs-vars.yaml", HEAD + "      vars: &v\n        a: 1\n"
                       "description: *v\n", 7, "steps[0].send.vars", "anchor (&v)"),
    "recursive-alias": ("self.yaml", "&a [*a]\n", 1, "", "no anchors or aliases"),
    "recursive-alias-in-entry": ("self-entry.yaml", "id: s\nentry: &e\n  event: go\n  where: *e\n"
                                 + SEND, 2, "entry", "anchor (&e)"),
    "alias-alone": ("alias.yaml", HEAD + "description: *nowhere\n", 7, "description",
                    "alias (*nowhere)"),
    "merge-of-an-alias": ("merge.yaml", "base: &b {event: go}\nid: s\nentry:\n  <<: *b\n" + SEND,
                          1, "base", "anchor (&b)"),
    "python-tag": ("python.yaml", "!!python/object/apply:os.system [true]\n", 1, "", "tag"),
    "timestamp-tag": ("timestamp.yaml", HEAD + "description: !!timestamp soon\n", 7,
                      "description", "no tags"),
    "int-tag": ("int.yaml", HEAD + "description: !!int " + "1:" * 100_000 + "1\n", 7,
                "description", "no tags"),
    "bool-tag": ("bool.yaml", HEAD + "description: !!bool maybe\n", 7, "description", "no tags"),
    "binary-tag": ("binary.yaml", HEAD + "description: !!binary aGk=\n", 7, "description",
                   "no tags"),
    "zone-directory": ("dir-zone.yaml", _quiet("America"), 10, "quiet_hours.timezone",
                       "unknown time zone 'America'"),
    "zone-traversal": ("up-zone.yaml", _quiet("../../etc/passwd"), 10, "quiet_hours.timezone",
                       "unknown time zone"),
    "zone-absolute": ("abs-zone.yaml", _quiet("/etc/passwd"), 10, "quiet_hours.timezone",
                      "unknown time zone"),
    "zone-10kb": ("long-zone.yaml", _quiet("A" * 10_000), 10, "quiet_hours.timezone",
                  "at most 64 characters"),
    "zone-10kb-of-dirs": ("dirs-zone.yaml", _quiet("A/" * 5_000), 10, "quiet_hours.timezone",
                          "at most 64 characters"),
    "zone-with-nul": ("nul-zone.json", JSON_HEAD + ', "quiet_hours": {"start": "21:00", '
                      '"end": "08:00", "timezone": "UTC\\u0000"}}', 1, "quiet_hours.timezone",
                      "unknown time zone"),
    "zone-package-file": ("py-zone.yaml", _quiet("__init__.py"), 10, "quiet_hours.timezone",
                          "unknown time zone"),
    "wait-10^18-weeks": ("wait.yaml", _wait("999999999999999999w"), 5, "steps[0].wait",
                         "at most 3650d (10 years)"),
    "cooldown-10^15-weeks": ("cooldown.yaml", HEAD + "cooldown: 1000000000000000w\n", 7,
                             "cooldown", "at most 3650d (10 years)"),
    "wait-one-ms-past": ("ms-past.yaml", _wait("3650d1ms"), 5, "steps[0].wait", "at most 3650d"),
    "wait-5000-digits": ("digits.yaml", _wait("9" * 5000 + "w"), 5, "steps[0].wait",
                         "longer than 64 characters"),
    "wait-many-parts": ("parts.yaml", _wait("1w" * 100_000), 5, "steps[0].wait",
                        "longer than 64 characters"),
    "timeout-json": ("timeout.json", '{"id": "s", "entry": {"event": "go"}, "steps": [{"wait_for":'
                     ' {"event": "buy", "timeout": "9223372036854775808ms"}}]}', 1,
                     "steps[0].wait_for.timeout", "at most 3650d"),
    "cap-per": ("per.yaml", HEAD + "caps:\n  - group: g\n    max: 1\n    per: 100000w\n", 10,
                "caps[0].per", "at most 3650d"),
    "inactive-for": ("inactive.yaml", "id: s\nentry:\n  inactive:\n    for: 99999999d\n" + SEND,
                     4, "entry.inactive.for", "at most 3650d"),
    "within": ("within.yaml", "id: s\nentry:\n  event: go\n  if:\n    - event: e\n"
               "      within: 4000d\n" + SEND, 6, "entry.if[0].within", "at most 3650d"),
    "time-in-minutes": ("minutes.json", '{"segment": "x", "triggers": [{"event": "e", '
                        '"time_in_minutes": 1000000000000000000000000}]}', 1,
                        "triggers[0].time_in_minutes", "less than or equal to 5256000"),
    "int-5000-digits": ("int.yaml", HEAD + "caps:\n  - group: g\n    max: " + "9" * 5000
                        + "\n    per: 1d\n", 9, "caps[0].max", "a number longer than 100"),
    "json-int-5000-digits": ("int.json", JSON_HEAD + ', "holdout": ' + "9" * 5000 + "}", 1,
                             "holdout", "a number longer than 100"),
    "nul-character": ("nul.yaml", HEAD + "description: a\x00b\n", 7, "", "U+0000"),
    "tag-directives": ("directives.yaml",
                       "".join(f"%TAG !t{i}! tag:x,{i}:\n" for i in range(30_000)) + "---\n" + HEAD,
                       11, "", "more than 10 YAML directives"),
    "values-fan-out": ("many.yaml", HEAD + "      vars:\n        x: [" + "1," * 500_000 + "1]\n",
                       8, "steps[0].send.vars.x[9982]", "more than 10000 keys and values"),
    "json-values-fan-out": ("many.json", JSON_HEAD + ', "description": [' + "{}," * 300_000
                            + "{}]}", 1, "description[9984]", "more than 10000 keys and values"),
    "two-documents": ("two.yaml", HEAD + "---\n" + HEAD, 7, "", "another document"),
    "over-1-mib": ("big.yaml", HEAD + "#" * (1 << 20), 0, "", "larger than 1 MiB"),
}


def _refused(path: Path) -> tuple[list[Problem], float]:
    start = time.perf_counter()
    with pytest.raises(InvalidSequence) as err:
        load_file(path)
    return err.value.problems, time.perf_counter() - start


@pytest.mark.parametrize(("name", "text", "line", "field", "message"), REFUSED.values(),
                         ids=REFUSED.keys())
def test_refused_cleanly_within_a_second(tmp_path, name, text, line, field, message):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    problems, seconds = _refused(path)
    assert seconds < 1.0
    assert len(problems) == 1, problems
    problem = problems[0]
    assert (problem.file, problem.line) == (str(path), line), problem
    assert field is None or problem.field == field, problem
    assert message in problem.message, problem
    assert len(problem.message) < 200  # a 10 KB value is not echoed back


@pytest.mark.parametrize("name", ["recursive-alias-in-entry", "billion-laughs", "int-tag",
                                  "block-nesting-1000", "nesting-in-vars", "json-objects-50k",
                                  "int-5000-digits", "values-fan-out", "flow-nesting-100k"])
def test_the_pure_python_parser_is_refused_the_same(tmp_path, monkeypatch, name):
    """Without libyaml, PyYAML's own parser feeds the same guards (slower on big files)."""
    monkeypatch.setattr(reading, "_LIBYAML", False)
    file_name, text, line, field, message = REFUSED[name]
    path = tmp_path / file_name
    path.write_text(text)
    problems, _ = _refused(path)
    assert [(p.line, p.field) for p in problems] == [(line, field or problems[0].field)]
    assert message in problems[0].message


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(HEAD.encode() + b"description: caf\xe9\n")
    problems, seconds = _refused(path)
    assert ([(p.line, p.message) for p in problems], seconds < 1) == ([(0, "not UTF-8 text")], True)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_instead_of_blocking(tmp_path):
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    problems, seconds = _refused(path)
    assert [p.message for p in problems] == ["cannot read: not a regular file"]
    assert seconds < 1


def test_a_directory_named_as_a_file_is_refused(tmp_path):
    problems, _ = _refused(tmp_path)
    assert [p.message for p in problems] == ["cannot read: not a regular file"]


def test_a_missing_file_is_refused(tmp_path):
    problems, _ = _refused(tmp_path / "nope.yaml")
    assert [p.message for p in problems] == ["cannot read: No such file or directory"]


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("# " + "x" * 70 + "\n", id="comments"),
        pytest.param(" " * 200 + "\n", id="blank-lines"),
    ],
)
def test_a_valid_mib_file_loads_within_a_second(tmp_path, text):
    """PyYAML's own scanner took 2 s on a MiB of comments; libyaml takes milliseconds."""
    path = tmp_path / "padded.yaml"
    path.write_text(text * ((1 << 20) // len(text) - 2) + HEAD)
    start = time.perf_counter()
    assert isinstance(load_file(path), Sequence)
    assert time.perf_counter() - start < 1


def test_ten_years_loads(tmp_path):
    path = tmp_path / "decade.yaml"
    path.write_text(_wait("3650d") + "cooldown: 521w3d\n")
    seq = load_file(path)
    assert isinstance(seq, Sequence)
    assert seq.cooldown == 3650 * 86_400_000


def test_every_problem_of_thousands_comes_within_a_second(tmp_path):
    """Each error's line is found through an index of the mapping's keys (a scan of the mapping
    per error took seconds at a few thousand errors)."""
    path = tmp_path / "typos.yaml"
    path.write_text(HEAD + "".join(f"typo{i}: 1\n" for i in range(4900)))
    problems, seconds = _refused(path)
    assert seconds < 1
    assert len(problems) == 4900
    assert (problems[-1].line, problems[-1].field) == (4906, "typo4899")


def test_a_set_with_thousands_of_missing_segments_is_answered_within_a_second(tmp_path):
    """load_paths walks each reference back to its line in nodes it keeps: it used to read
    and compose the file again for each one (a minute for 1,500)."""
    (tmp_path / "refs.yaml").write_text(
        "id: s\nentry:\n  event: go\nsteps:\n"
        + "".join(f"  - branch:\n      if:\n        - segment: nope{i}\n" for i in range(1000))
        + "  - exit\n")
    start = time.perf_counter()
    with pytest.raises(InvalidSequence) as err:
        load_paths([tmp_path])
    assert time.perf_counter() - start < 1
    assert len(err.value.problems) == 1000
    assert (err.value.problems[-1].line, err.value.problems[-1].field) == (
        3004, "steps[999].branch.if[0].segment")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param('"\\ud83d\\ude00 caf\\u00e9"', "\U0001f600 café", id="surrogate-pair"),
        pytest.param('"\\\\ud83d"', "\\ud83d", id="escaped-backslash"),
        pytest.param('"a\u2028b\x7fc"', "a\u2028b\x7fc", id="raw-line-separator-and-del"),
    ],
)
def test_json_that_yaml_would_refuse_still_loads(tmp_path, raw, expected):
    """JSON is read by json; the copy composed as YAML only to locate errors is made readable."""
    path = tmp_path / "escapes.json"
    path.write_text(JSON_HEAD + f', "description": {raw}}}', encoding="utf-8")
    seq = load_file(path)
    assert isinstance(seq, Sequence)
    assert seq.description == expected == json.loads(raw)


def test_a_lone_surrogate_in_json_is_located(tmp_path):
    path = tmp_path / "lone.json"
    path.write_text('{\n  "id": "\\ud800",\n  "entry": {"event": "go"},\n'
                    '  "steps": [{"send": {"template": "t"}}]\n}\n')
    problems, _ = _refused(path)
    assert [(p.line, p.field) for p in problems] == [(2, "id")]

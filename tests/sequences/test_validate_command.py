"""`pulsewire validate`: exit 0 on the examples; exit 1 on a broken file, with each problem
printed as `file:line: field: message` so an editor can jump to it."""

from pathlib import Path

import pytest

from server.cli import main

SEND = "  - send:\n      template: t\n"
CASES = {
    "bad-duration": (
        "bad-duration.yaml",
        "id: s\nentry:\n  event: cart_add\nsteps:\n  - wait_for:\n      event: purchase\n"
        "      timeout: 60x\n" + SEND,
        7, "steps[0].wait_for.timeout", "60x",
    ),
    "unknown-key": (
        "typo.yaml",
        "id: s\nentry:\n  event: cart_add\nsteps:\n  - wait_for:\n      event: purchase\n"
        "      timout: 60m\n",
        7, "steps[0].wait_for.timout", "unknown field",
    ),
    "missing-steps": (
        "missing.yaml", "id: s\nentry:\n  event: cart_add\n", 1, "steps", "required",
    ),
    "two-kinds-in-a-step": (
        "two-kinds.yaml",
        "id: s\nentry:\n  event: cart_add\nsteps:\n  - send:\n      template: t\n    wait: 1h\n",
        5, "steps[0]", "exactly one of",
    ),
    "branch-target-missing": (
        "no-target.yaml",
        "id: s\nentry:\n  event: cart_add\nsteps:\n  - branch:\n      if:\n"
        "        - event: page_view\n          within: 1h\n      then: nowhere\n" + SEND,
        9, "steps[0].branch.then", "no step is named 'nowhere'",
    ),
    "jump-backward": (
        "backward.yaml",
        "id: s\nentry:\n  event: cart_add\nsteps:\n  - name: first\n    send:\n      template: t\n"
        "  - wait_for:\n      event: purchase\n      timeout: 1h\n    on_timeout: first\n",
        11, "steps[1].on_timeout", "not a later step",
    ),
    "duplicate-key": (
        "dup.yaml",
        "id: s\nentry:\n  event: cart_add\nsteps:\n  - send:\n      template: t\n"
        "      template: u\n",
        7, "steps[0].send.template", "given twice",
    ),
    "unknown-time-zone": (
        "tz.yaml",
        "id: s\nentry:\n  event: cart_add\nsteps:\n" + SEND
        + "quiet_hours:\n  start: \"21:00\"\n  end: \"08:00\"\n  timezone: Mars/Olympus_Mons\n",
        10, "quiet_hours.timezone", "unknown time zone",
    ),
    "time-zone-directory": (
        "tz-dir.yaml",
        "id: s\nentry:\n  event: cart_add\nsteps:\n" + SEND
        + "quiet_hours:\n  start: \"21:00\"\n  end: \"08:00\"\n  timezone: America\n",
        10, "quiet_hours.timezone", "unknown time zone 'America'",
    ),
    "wait-past-ten-years": (
        "long-wait.yaml",
        "id: s\nentry:\n  event: cart_add\nsteps:\n  - wait: 1000000000000000w\n" + SEND,
        5, "steps[0].wait", "at most 3650d (10 years)",
    ),
    "alias": (
        "alias.yaml",
        "id: s\nentry: &e\n  event: cart_add\nsteps:\n" + SEND + "exit_on:\n  - *e\n",
        2, "entry", "no anchors or aliases",
    ),
    "unknown-segment": (
        "no-segment.yaml",
        "id: s\nentry:\n  segment: nobody-here\nsteps:\n" + SEND,
        3, "entry.segment", "no segment is named 'nobody-here'",
    ),
    "holdout-1.5": (
        "holdout.yaml",
        "id: s\nentry:\n  event: cart_add\nsteps:\n" + SEND + "holdout: 1.5\n",
        7, "holdout", "less than 1",
    ),
}


# Faults nested under a step or an entry whose kind is told by a key ("event", "segment") must be
# located at the nested key, not at the key that names the kind.
NESTED = {
    "entry-if-bad-duration": (
        "entry-if.yaml",
        "id: s\nentry:\n  event: page_view\n  if:\n    - event: scroll\n      within: 30x\n"
        "steps:\n" + SEND,
        6, "entry.if[0].within", "30x",
    ),
    "entry-where-bad-operator": (
        "entry-where.yaml",
        "id: s\nentry:\n  event: page_view\n  where:\n    depth_pct: {gte: lots}\n"
        "steps:\n" + SEND,
        5, "entry.where.depth_pct.gte", "number",
    ),
    "segment-entry-unknown-key": (
        "segment-entry.yaml",
        "id: s\nentry:\n  segment: x\n  typo: 1\nsteps:\n" + SEND,
        4, "entry.typo", "unknown field",
    ),
    "branch-if-bad-duration": (
        "branch-if.yaml",
        "id: s\nentry:\n  event: go\nsteps:\n  - branch:\n      if:\n        - event: scroll\n"
        "          within: 30x\n",
        8, "steps[0].branch.if[0].within", "30x",
    ),
    "wait-for-where-bad-operator": (
        "wait-for-where.yaml",
        "id: s\nentry:\n  event: go\nsteps:\n  - wait_for:\n      event: buy\n"
        "      timeout: 1h\n      where:\n        value: {gt: much}\n",
        9, "steps[0].wait_for.where.value.gt", "number",
    ),
}


def _validate(capsys: pytest.CaptureFixture[str], *paths: Path) -> tuple[int, str, str]:
    code = main(["validate", *(str(p) for p in paths)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_examples_are_valid(capsys):
    code, out, err = _validate(capsys, Path("examples/sequences"), Path("examples/segments"))
    assert (code, err) == (0, "")
    assert "ok  examples/sequences/cart-recovery.yaml  (cart-recovery)" in out
    assert "ok  examples/segments/high-intent.json  (high-intent-cart-abandoners)" in out
    assert out.rstrip().endswith("segment(s)")


@pytest.mark.parametrize(("name", "text", "line", "field", "message"), CASES.values(),
                         ids=CASES.keys())
def test_broken_file_is_located_by_file_line_and_field(capsys, tmp_path, name, text, line,
                                                       field, message):
    path = tmp_path / name
    path.write_text(text)
    code, _, err = _validate(capsys, path)
    assert code == 1
    located = [m for m in err.splitlines() if m.startswith(f"{path}:{line}: {field}: ")]
    assert located, err
    assert message in located[0]
    assert err.splitlines()[-1].startswith("invalid: ")


@pytest.mark.parametrize(("name", "text", "line", "field", "message"), NESTED.values(),
                         ids=NESTED.keys())
def test_nested_fault_is_located_at_its_own_key(capsys, tmp_path, name, text, line, field,
                                                message):
    path = tmp_path / name
    path.write_text(text)
    code, _, err = _validate(capsys, path)
    assert code == 1
    located = [m for m in err.splitlines() if m.startswith(f"{path}:{line}: {field}: ")]
    assert located, err
    assert message in located[0]


def test_unknown_key_also_reports_the_missing_field_it_hid(capsys, tmp_path):
    name, text, *_ = CASES["unknown-key"]
    path = tmp_path / name
    path.write_text(text)
    _, _, err = _validate(capsys, path)
    assert f"{path}:5: steps[0].wait_for.timeout: required field is missing" in err


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        pytest.param("syntax.yaml", "id: s\nentry:\n  event: cart_add: now\nsteps:\n" + SEND, 3,
                     id="yaml-mapping-in-scalar"),
        pytest.param("tab.yaml", "id: s\nentry:\n\tevent: cart_add\n", 3, id="yaml-tab"),
        pytest.param("bad.json", '{\n  "id": "s",\n  "entry": {"event": "cart_add"},\n'
                     '  "steps": [{"send": {"template": "t"}},]\n}\n', 4,
                     id="json-trailing-comma"),
    ],
)
def test_syntax_errors_give_the_line(capsys, tmp_path, name, text, line):
    path = tmp_path / name
    path.write_text(text)
    code, _, err = _validate(capsys, path)
    assert code == 1
    assert err.startswith(f"{path}:{line}: "), err


def test_two_files_with_one_id(capsys, tmp_path):
    text = "id: twin\nentry:\n  event: go\nsteps:\n" + SEND
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yaml").write_text(text)
    code, _, err = _validate(capsys, tmp_path)
    assert code == 1
    assert f"{tmp_path / 'b.yaml'}:1: id: sequence 'twin' is already defined in " \
           f"{tmp_path / 'a.yaml'}" in err


def test_every_problem_of_every_file_is_reported(capsys, tmp_path):
    for name, text, *_ in CASES.values():
        (tmp_path / name).write_text(text)
    code, _, err = _validate(capsys, tmp_path)
    assert code == 1
    files_named = {Path(line.split(":", 1)[0]).name for line in err.splitlines()[:-1]}
    assert files_named == {name for name, *_ in CASES.values()}

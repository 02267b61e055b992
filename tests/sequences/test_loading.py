"""Loading sequence and segment files: the examples, the seed segment as the product brief
writes it, and YAML read by YAML 1.2 rules (no `on`/`no` booleans, no sexagesimal 21:00)."""

import json
from pathlib import Path

import pytest

from server.errors import InvalidSequence
from server.sequences import Segment, Sequence, load_file, load_paths
from server.sequences.model import (
    ExitStep,
    QuietHours,
    SendStep,
    WaitForStep,
)

SEED = (
    '{"segment": "high-intent-cart-abandoners", "triggers": [{"event": "cart_abandonment", '
    '"time_in_minutes": 60}, {"event": "page_view", "page": "/product/premium-laptop", '
    '"time_in_minutes": 120}], "content_rules": [{"field": "discount_code", "value": "SAVE15"}]}'
)


@pytest.mark.parametrize(
    ("path", "ident"),
    [
        ("examples/sequences/cart-recovery.yaml", "cart-recovery"),
        ("examples/sequences/browse-abandonment.yaml", "browse-abandonment"),
    ],
)
def test_required_examples_load(path, ident):
    seq = load_file(Path(path))
    assert isinstance(seq, Sequence)
    assert seq.id == ident
    assert seq.group == "recovery"
    assert [(c.group, c.max, c.per) for c in seq.caps] == [("recovery", 2, 7 * 86_400_000)]


def test_cart_recovery_reads_as_written():
    seq = load_file(Path("examples/sequences/cart-recovery.yaml"))
    assert isinstance(seq, Sequence)
    wait, send = seq.steps
    assert isinstance(wait, WaitForStep) and isinstance(send, SendStep)
    assert (wait.wait_for.event, wait.wait_for.timeout, wait.on_event) == (
        "purchase", 3_600_000, "exit")
    assert send.send.vars == {"discount_code": "SAVE15", "offer_type": "free_warranty"}
    assert [x.event for x in seq.exit_on] == ["purchase"]


def test_every_example_loads_as_one_set():
    sequence_set, origin = load_paths([Path("examples/sequences"), Path("examples/segments")])
    ids = {s.id for s in sequence_set.sequences}
    assert {"cart-recovery", "browse-abandonment", "high-intent-offer"} <= ids
    assert ids == {p.stem for p in Path("examples/sequences").iterdir()
                   if p.suffix in (".yaml", ".yml", ".json")}
    assert [s.segment for s in sequence_set.segments] == ["high-intent-cart-abandoners"]
    assert origin["cart-recovery"] == Path("examples/sequences/cart-recovery.yaml")


def test_seed_segment_loads_as_written(tmp_path):
    path = tmp_path / "seed.json"
    path.write_text(SEED)
    seg = load_file(path)
    assert isinstance(seg, Segment)
    assert seg == Segment.model_validate(json.loads(SEED))
    assert seg.segment == "high-intent-cart-abandoners"
    assert [(t.event, t.page, t.time_in_minutes) for t in seg.triggers] == [
        ("cart_abandonment", None, 60), ("page_view", "/product/premium-laptop", 120)]
    assert [(r.field, r.value) for r in seg.content_rules] == [("discount_code", "SAVE15")]


def test_seed_segment_works_with_a_sequence_that_uses_it(tmp_path):
    (tmp_path / "seed.json").write_text(SEED)
    (tmp_path / "offer.yaml").write_text(
        "id: offer\nentry:\n  segment: high-intent-cart-abandoners\n"
        "steps:\n  - send:\n      template: offer\n")
    sequence_set, _ = load_paths([tmp_path])
    assert [s.id for s in sequence_set.sequences] == ["offer"]


TRAPS = """\
id: traps
entry:
  event: page_view
  where:
    country: NO
    flag: on
    answer: yes
steps:
  - wait_for:
      event: off
      timeout: 1h
    on_event: exit
    on_timeout: next
  - send:
      template: y
  - exit
quiet_hours:
  start: 21:00
  end: 08:00
caps:
  - group: "*"
    max: 2
    per: 7d
holdout: 0.25
"""


def test_yaml_is_read_by_yaml_1_2_rules(tmp_path):
    path = tmp_path / "traps.yaml"
    path.write_text(TRAPS)
    seq = load_file(path)
    assert isinstance(seq, Sequence)
    assert seq.quiet_hours == QuietHours(start="21:00", end="08:00")
    assert seq.entry.where == {"country": "NO", "flag": "on", "answer": "yes"}
    wait, send, end = seq.steps
    assert isinstance(wait, WaitForStep) and isinstance(send, SendStep)
    assert (wait.wait_for.event, wait.on_event, wait.on_timeout) == ("off", "exit", "next")
    assert send.send.template == "y"
    assert isinstance(end, ExitStep)
    assert (seq.caps[0].max, seq.holdout) == (2, 0.25)


def test_a_set_with_any_invalid_file_does_not_load(tmp_path):
    (tmp_path / "good.yaml").write_text(
        "id: good\nentry:\n  event: go\nsteps:\n  - send:\n      template: t\n")
    (tmp_path / "bad.yaml").write_text("id: bad\nentry:\n  event: go\n")
    with pytest.raises(InvalidSequence) as err:
        load_paths([tmp_path])
    assert [(Path(p.file).name, p.field) for p in err.value.problems] == [("bad.yaml", "steps")]


@pytest.mark.parametrize(
    ("plain", "kind"),
    [
        pytest.param("2024-12-31", "date", id="date"),
        pytest.param("2024-06-03 12:00:00", "timestamp", id="timestamp"),
        pytest.param("=", "value", id="equals-sign"),
    ],
)
def test_yaml_1_1_types_stay_strings(tmp_path, plain, kind):
    """YAML 1.2 has no timestamp or `=` (value) types: unquoted, they are plain strings, in a
    `where` as in template vars."""
    path = tmp_path / f"{kind}.yaml"
    path.write_text(
        f"id: {kind}\nentry:\n  event: page_view\n  where:\n    day: {plain}\n"
        f"steps:\n  - send:\n      template: t\n      vars:\n        ends: {plain}\n"
    )
    seq = load_file(path)
    assert isinstance(seq, Sequence)
    assert seq.entry.where == {"day": plain}
    send = seq.steps[0]
    assert isinstance(send, SendStep)
    assert send.send.vars == {"ends": plain}


JSON_SEQUENCE = {
    "id": "json-seq",
    "description": "Sale \U0001f600 caf\u00e9",
    "entry": {"event": "go"},
    "steps": [{"send": {"template": "t", "vars": {"subject": "Hi \U0001f44b"}}}],
}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(json.dumps(JSON_SEQUENCE, indent="\t"), id="tab-indented"),
        pytest.param(json.dumps(JSON_SEQUENCE, indent=2), id="ascii-escapes-surrogate-pairs"),
        pytest.param(json.dumps(JSON_SEQUENCE, ensure_ascii=False), id="utf-8"),
    ],
)
def test_json_files_read_as_json_reads_them(tmp_path, text):
    path = tmp_path / "seq.json"
    path.write_text(text, encoding="utf-8")
    assert load_file(path) == Sequence.model_validate(json.loads(text))

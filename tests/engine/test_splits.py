"""Splits: each user goes down one arm by weight, drawn stably from (user, sequence, step), runs
the arm's steps and goes on after the split; arms compose with waits, exits, caps and quiet
hours like any other steps. The loader refuses jumps into an arm, a second split, nested splits
and twice-used arm names, each at its line and field."""

from collections import Counter
from pathlib import Path

import pytest
from engine_tables import DAY, HOUR, MIN, T0, brief, ms_at, rules_of, run

from server.engine import Assigned, Converted, Engine, Event, UserState
from server.errors import InvalidSequence
from server.sequences import load_file

SPLIT = {"id": "ab", "entry": {"event": "go"}, "steps": [
    {"split": {"arms": [
        {"name": "a", "weight": 50, "steps": [{"send": {"template": "a1"}}]},
        {"name": "b", "weight": 30, "steps": [{"wait": "1h"}, {"send": {"template": "b1"}}]},
        {"name": "c", "weight": 20, "steps": [{"send": {"template": "c1"}}, "exit"]},
    ]}},
    {"send": {"template": "after"}},
]}
GO = Event("go", T0)


def _arm(engine: Engine, user: str) -> str:
    (assigned,) = [a for a in run(engine, [GO], UserState(user)) if isinstance(a, Assigned)]
    return assigned.arm


def test_the_weights_hold_within_2_points_over_100000_users():
    engine = Engine(rules_of(SPLIT), unknown_users_mailable=True)
    counts = Counter(_arm(engine, f"u:{i}") for i in range(100_000))
    shares = {arm: n / 100_000 for arm, n in counts.items()}
    assert shares == pytest.approx({"a": 0.5, "b": 0.3, "c": 0.2}, abs=0.02)


def test_the_arm_is_the_same_for_a_user_id_and_its_routing_key_in_any_engine():
    first, second = Engine(rules_of(SPLIT)), Engine(rules_of(SPLIT), global_holdout=0.5)
    for i in range(300):
        assert _arm(first, f"u:user-{i}") == _arm(second, f"user-{i}")


def test_each_arm_runs_its_steps_then_goes_on_after_the_split():
    engine = Engine(rules_of(SPLIT), unknown_users_mailable=True)
    seen = {}
    for i in range(60):
        actions = run(engine, [GO, T0 + DAY], UserState(f"user-{i}"))
        arm = next(a.arm for a in actions if isinstance(a, Assigned))
        seen[arm] = [(a[3], a[4]) for a in brief(actions) if a[0] == "send"]
    assert seen == {"a": [("a1", T0), ("after", T0)],
                    "b": [("b1", T0 + HOUR), ("after", T0 + HOUR)],
                    "c": [("c1", T0)]}


def _user_in(arm: str, doc=SPLIT) -> str:
    engine = Engine(rules_of(doc))
    return next(u for u in (f"user-{i}" for i in range(200)) if _arm(engine, u) == arm)


def test_exit_on_ends_an_instance_waiting_inside_an_arm():
    doc = {**SPLIT, "exit_on": [{"event": "purchase"}]}
    actions = brief(run(Engine(rules_of(doc), unknown_users_mailable=True),
                        [GO, Event("purchase", T0 + MIN), T0 + DAY], UserState(_user_in("b"))))
    assert [a for a in actions if a[0] in ("send", "exit")] == [
        ("exit", "ab", "", T0 + MIN, "exit_on")]


def test_caps_count_the_arms_sends_like_any_other():
    doc = {**SPLIT, "caps": [{"group": "*", "max": 1, "per": "1d"}]}
    actions = brief(run(Engine(rules_of(doc), unknown_users_mailable=True), [GO, T0 + DAY],
                        UserState(_user_in("a"))))
    assert [a[3:] for a in actions if a[0] in ("send", "suppress")] == [
        ("a1", T0), ("after", T0, "cap")]


def test_quiet_hours_hold_a_send_inside_an_arm():
    doc = {**SPLIT, "quiet_hours": {"start": "21:00", "end": "08:00", "timezone": "UTC"}}
    late = ms_at(2024, 6, 3, 22)
    user = _user_in("b")
    actions = brief(run(Engine(rules_of(doc), unknown_users_mailable=True),
                        [Event("go", late), late + DAY], UserState(user)))
    assert [a[3:5] for a in actions if a[0] == "send"] == [
        ("b1", ms_at(2024, 6, 4, 8)), ("after", ms_at(2024, 6, 4, 8))]


def test_a_jump_inside_an_arm_and_out_to_after_the_split():
    doc = {"id": "jumps", "entry": {"event": "go"}, "steps": [
        {"split": {"arms": [
            {"name": "a", "weight": 1, "steps": [
                {"wait_for": {"event": "click", "timeout": "1h"}, "on_event": "thanks",
                 "on_timeout": "a-late"},
                {"name": "a-late", "send": {"template": "late"}},
                {"name": "thanks", "send": {"template": "thanks"}}]},
            {"name": "b", "weight": 1, "steps": [
                {"wait_for": {"event": "click", "timeout": "1h"}, "on_event": "done"}]},
        ]}},
        {"send": {"template": "after"}},
        {"name": "done", "send": {"template": "done"}},
    ]}
    engine = Engine(rules_of(doc), unknown_users_mailable=True)
    user_a, user_b = _user_in("a", doc), _user_in("b", doc)
    clicked = [GO, Event("click", T0 + MIN), T0 + DAY]
    assert [a[3] for a in brief(run(engine, clicked, UserState(user_a))) if a[0] == "send"] == [
        "thanks", "after", "done"]
    assert [a[3] for a in brief(run(engine, [GO, T0 + DAY], UserState(user_a)))
            if a[0] == "send"] == ["late", "thanks", "after", "done"]
    assert [a[3] for a in brief(run(engine, clicked, UserState(user_b))) if a[0] == "send"] == [
        "done"]


def test_the_conversion_carries_the_arm():
    user = _user_in("b")
    actions = run(Engine(rules_of(SPLIT), unknown_users_mailable=True),
                  [GO, T0 + 2 * HOUR, Event("purchase", T0 + 3 * HOUR)], UserState(user))
    (conv,) = [a for a in actions if isinstance(a, Converted)]
    # the flat order: split, a1, jump, wait, b1, jump, c1, exit, after
    assert (conv.arm, conv.sent) == ("b", (8, "after", T0 + HOUR))


@pytest.mark.parametrize(("steps", "line", "field", "says"), [
    pytest.param("""
  - {branch: {if: [{segment: s}], then: in-a}}
  - split:
      arms:
        - {name: a, weight: 1, steps: [{send: {template: x}}, {name: in-a, wait: 1h}]}
        - {name: b, weight: 1, steps: [{send: {template: y}}]}
""", 4, "steps[0].branch.then", "inside another arm", id="jump-into-an-arm"),
    pytest.param("""
  - split:
      arms:
        - {name: a, weight: 1, steps: [{branch: {if: [{segment: s}], then: in-b}}]}
        - {name: b, weight: 1, steps: [{name: in-b, send: {template: y}}]}
""", 6, "steps[0].split.arms[0].steps[0].branch.then", "inside another arm",
        id="jump-across-arms"),
    pytest.param("""
  - split: {arms: [{name: a, weight: 1, steps: [exit]}, {name: b, weight: 1, steps: [exit]}]}
  - split: {arms: [{name: a, weight: 1, steps: [exit]}, {name: b, weight: 1, steps: [exit]}]}
""", 5, "steps[1].split", "at most one split", id="two-splits"),
    pytest.param("""
  - split:
      arms:
        - {name: a, weight: 1, steps: [exit]}
        - {name: a, weight: 1, steps: [exit]}
""", 7, "steps[0].split.arms[1].name", "used twice", id="arm-name-twice"),
    pytest.param("""
  - split:
      arms:
        - name: a
          weight: 1
          steps:
            - split: {arms: [{name: x, weight: 1, steps: [exit]},
                             {name: y, weight: 1, steps: [exit]}]}
        - {name: b, weight: 1, steps: [exit]}
""", 9, "steps[0].split.arms[0].steps[0].split", "another split", id="nested-split"),
    pytest.param("""
  - split: {arms: [{name: a, weight: 0, steps: [exit]}, {name: b, weight: 1, steps: [exit]}]}
""", 4, "steps[0].split.arms[0].weight", "greater than 0", id="zero-weight"),
])
def test_the_loader_refuses_a_bad_split_at_its_line_and_field(tmp_path: Path, steps, line,
                                                               field, says):
    path = tmp_path / "bad.yaml"
    path.write_text("id: bad\nentry: {event: go}\nsteps:" + steps)
    with pytest.raises(InvalidSequence) as err:
        load_file(path)
    (problem,) = err.value.problems
    assert (problem.line, problem.field) == (line, field), problem
    assert says in problem.message

"""Caps count emails actually sent to the user by sequences of a group in the rolling window
(t - per, t]; a send at the cap is suppressed with reason "cap" and the instance moves on.
exit_on ends an instance at once wherever it is."""

import pytest
from engine_tables import DAY, HOUR, MIN, T0, brief, ms_at, rules_of, run, run_brief

from server.engine import Engine, Event, UserState


def _one_send(ident: str, group: str | None, caps: list[dict[str, object]] | None = None,
              template: str | None = None) -> dict[str, object]:
    doc: dict[str, object] = {"id": ident, "entry": {"event": ident},
                              "steps": [{"send": {"template": template or ident}}]}
    if group is not None:
        doc["group"] = group
    if caps:
        doc["caps"] = caps
    return doc


RECOVERY_2_PER_DAY = {"group": "recovery", "max": 2, "per": "1d"}
NUDGE = rules_of(_one_send("nudge", "recovery", [RECOVERY_2_PER_DAY]))


def _outcomes(actions):
    """(template, at, "sent" or the suppression reason) per send decision."""
    return [(a[3], a[4], "sent") if a[0] == "send" else (a[3], a[4], a[5])
            for a in actions if a[0] in ("send", "suppress")]


def _nudges(*offsets: int) -> list[Event]:
    return [Event("nudge", T0 + off) for off in offsets]


@pytest.mark.parametrize(
    ("offsets", "expected"),
    [
        pytest.param([0, HOUR], ["sent", "sent"], id="under-cap"),
        pytest.param([0, HOUR, 2 * HOUR], ["sent", "sent", "cap"], id="third-capped"),
        pytest.param([0, HOUR, DAY - 1], ["sent", "sent", "cap"], id="1ms-before-window-slides"),
        pytest.param([0, HOUR, DAY], ["sent", "sent", "sent"], id="oldest-leaves-at-t-minus-per"),
        pytest.param([0, HOUR, 2 * HOUR, DAY], ["sent", "sent", "cap", "sent"],
                     id="suppressed-send-does-not-count"),
        pytest.param([0, HOUR, DAY, DAY + HOUR - 1], ["sent", "sent", "sent", "cap"],
                     id="window-slides-one-by-one"),
        pytest.param([0, HOUR, DAY, DAY + HOUR], ["sent", "sent", "sent", "sent"],
                     id="second-leaves-at-its-t-plus-per"),
    ],
)
def test_rolling_window_cap(offsets, expected):
    actions = run_brief(NUDGE, _nudges(*offsets))
    assert [o[2] for o in _outcomes(actions)] == expected


def test_capped_instance_moves_on_to_its_next_step():
    rules = rules_of({
        "id": "pair", "group": "g", "entry": {"event": "go"},
        "caps": [{"group": "g", "max": 1, "per": "1d"}],
        "steps": [{"send": {"template": "first"}}, {"send": {"template": "second"}},
                  {"wait": "1h"}, {"send": {"template": "third"}}],
    })
    assert run_brief(rules, [Event("go", T0), T0 + HOUR]) == [
        ("enter", "pair", "", T0),
        ("send", "pair", "", "first", T0),
        ("suppress", "pair", "", "second", T0, "cap"),
        ("suppress", "pair", "", "third", T0 + HOUR, "cap"),
        ("exit", "pair", "", T0 + HOUR, "completed"),
    ]


@pytest.mark.parametrize(
    ("docs", "events", "expected"),
    [
        pytest.param(
            [_one_send("a", "recovery", [RECOVERY_2_PER_DAY]), _one_send("b", "recovery")],
            ["a", "b", "a", "b"], ["sent", "sent", "cap", "cap"],
            id="cap-declared-once-covers-whole-group",
        ),
        pytest.param(
            [_one_send("a", "recovery", [RECOVERY_2_PER_DAY]), _one_send("promo", "promo")],
            ["a", "promo", "promo", "a", "a"], ["sent", "sent", "sent", "sent", "cap"],
            id="other-groups-not-counted",
        ),
        pytest.param(
            [_one_send("a", "recovery"), _one_send("b", "promo"), _one_send("c", None),
             _one_send("g", "growth", [{"group": "*", "max": 3, "per": "1d"}])],
            ["a", "b", "c", "g", "a", "c"], ["sent", "sent", "sent", "cap", "cap", "cap"],
            id="star-cap-counts-and-covers-every-group",
        ),
        pytest.param(
            [_one_send("a", "recovery", [RECOVERY_2_PER_DAY,
                                         {"group": "*", "max": 1, "per": "1h"}])],
            ["a", "a"], ["sent", "cap"],
            id="every-covering-cap-is-checked",
        ),
    ],
)
def test_caps_cover_groups(docs, events, expected):
    steps = [Event(name, T0 + i * MIN) for i, name in enumerate(events)]
    assert [o[2] for o in _outcomes(run_brief(rules_of(*docs), steps))] == expected


def test_two_caps_on_one_group_both_hold():
    rules = rules_of(_one_send("nudge", "recovery", [RECOVERY_2_PER_DAY,
                                                     {"group": "recovery", "max": 3,
                                                      "per": "7d"}]))
    offsets = [0, HOUR, 2 * DAY, 3 * DAY, 7 * DAY]
    assert [o[2] for o in _outcomes(run_brief(rules, _nudges(*offsets)))] == [
        "sent", "sent", "sent", "cap", "sent"
    ]


def _quiet_exit(first_step: dict[str, object]) -> object:
    return rules_of({
        "id": "held", "entry": {"event": "go"}, "exit_on": [{"event": "stop"}],
        "steps": [first_step, {"send": {"template": "after"}}],
        "quiet_hours": {"start": "21:00", "end": "08:00", "timezone": "UTC"},
    })


NIGHT = ms_at(2024, 6, 3, 22)  # inside 21:00-08:00 UTC


@pytest.mark.parametrize(
    ("first_step", "start"),
    [
        pytest.param({"wait": "2h"}, T0, id="at-a-wait"),
        pytest.param({"wait_for": {"event": "never", "timeout": "2h"}}, T0, id="at-a-wait-for"),
        pytest.param({"send": {"template": "deferred"}}, NIGHT, id="at-a-quiet-deferred-send"),
    ],
)
def test_exit_on_ends_the_instance_wherever_it_is(first_step, start):
    engine, state = Engine(_quiet_exit(first_step), unknown_users_mailable=True), UserState("u")
    actions = brief(run(engine, [Event("go", start), Event("stop", start + HOUR)], state))
    assert actions == [("enter", "held", "", start), ("exit", "held", "", start + HOUR, "exit_on")]
    assert engine.next_deadline(state) is None
    assert engine.advance(state, start + 3 * DAY) == []


def test_exit_on_where_must_match():
    rules = rules_of({
        "id": "held", "entry": {"event": "go"},
        "exit_on": [{"event": "purchase", "where": {"value": {"gte": 100}}}],
        "steps": [{"wait": "2h"}, {"send": {"template": "after"}}],
    })
    small = run_brief(rules, [Event("go", T0), Event("purchase", T0 + 1, {"value": 99}),
                              T0 + 2 * HOUR])
    big = run_brief(rules, [Event("go", T0), Event("purchase", T0 + 1, {"value": 100})])
    assert ("send", "held", "", "after", T0 + 2 * HOUR) in small
    assert big[-1] == ("exit", "held", "", T0 + 1, "exit_on")

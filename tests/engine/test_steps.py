"""Steps: branch on a signal, a segment or the entry event; wait; exit; forward jumps by name."""

import pytest
from engine_tables import DAY, HOUR, MIN, T0, rules_of, run_brief

from server.engine import Event


def _branching(condition: dict[str, object], **extra: object) -> object:
    return rules_of({
        "id": "fork",
        "entry": {"event": "go"},
        "steps": [
            {"branch": {"if": [condition], "then": "taken"}},
            {"send": {"template": "not-taken"}},
            "exit",
            {"name": "taken", "send": {"template": "taken"}},
        ],
    }, *extra.values())


RECENT_VIEW = {"event": "page_view", "within": "1h"}
MEMBER = {"segment": "browsers"}
BROWSERS = {"segment": "browsers", "triggers": [{"event": "page_view", "time_in_minutes": 60}]}
BIG_CART = {"entry_where": {"value": {"gte": 200}}}


def _templates(actions):
    return [a[3] for a in actions if a[0] == "send"]


@pytest.mark.parametrize(
    ("rules", "steps", "templates", "ended"),
    [
        pytest.param(_branching(RECENT_VIEW), [Event("page_view", T0 - HOUR + 1), Event("go", T0)],
                     ["taken"], "completed", id="signal-holds"),
        pytest.param(_branching(RECENT_VIEW), [Event("page_view", T0 - HOUR), Event("go", T0)],
                     ["not-taken"], "exit", id="signal-at-window-start"),
        pytest.param(_branching(MEMBER, segment=BROWSERS),
                     [Event("page_view", T0 - MIN), Event("go", T0)], ["taken"], "completed",
                     id="segment-member"),
        pytest.param(_branching(MEMBER, segment=BROWSERS), [Event("go", T0)], ["not-taken"],
                     "exit", id="segment-not-member"),
        pytest.param(_branching(BIG_CART), [Event("go", T0, {"value": 200})], ["taken"],
                     "completed", id="entry-where-holds"),
        pytest.param(_branching(BIG_CART), [Event("go", T0, {"value": 199.5})], ["not-taken"],
                     "exit", id="entry-where-does-not-hold"),
        pytest.param(_branching(BIG_CART), [Event("go", T0, {})], ["not-taken"], "exit",
                     id="entry-where-missing-prop"),
    ],
)
def test_branch(rules, steps, templates, ended):
    actions = run_brief(rules, steps)
    assert _templates(actions) == templates
    assert actions[-1] == ("exit", "fork", "", T0, ended)


def test_branch_is_evaluated_when_reached_not_at_entry():
    rules = rules_of({
        "id": "later", "entry": {"event": "go"},
        "steps": [{"wait": "1d"},
                  {"branch": {"if": [{"event": "page_view", "within": "1d"}], "then": "exit"}},
                  {"send": {"template": "come-back"}}],
    })
    came_back = run_brief(rules, [Event("go", T0), Event("page_view", T0 + 1), T0 + DAY])
    stayed_away = run_brief(rules, [Event("page_view", T0 - 1), Event("go", T0), T0 + DAY])
    assert came_back[-1] == ("exit", "later", "", T0 + DAY, "exit")
    assert _templates(stayed_away) == ["come-back"]


WAITS = rules_of({
    "id": "drip", "entry": {"event": "go"},
    "steps": [{"send": {"template": "one"}}, {"wait": "1d"}, {"send": {"template": "two"}},
              {"wait": "90m"}, {"send": {"template": "three"}}],
})


@pytest.mark.parametrize(
    ("until", "sent"),
    [
        pytest.param(T0, [("one", T0)], id="first-at-once"),
        pytest.param(T0 + DAY - 1, [("one", T0)], id="1ms-before-wait-ends"),
        pytest.param(T0 + DAY, [("one", T0), ("two", T0 + DAY)], id="wait-ends-exactly"),
        pytest.param(T0 + DAY + 90 * MIN,
                     [("one", T0), ("two", T0 + DAY), ("three", T0 + DAY + 90 * MIN)],
                     id="second-wait-from-second-send"),
    ],
)
def test_wait_steps(until, sent):
    actions = run_brief(WAITS, [Event("go", T0), until])
    assert [(a[3], a[4]) for a in actions if a[0] == "send"] == sent


JUMPS = rules_of({
    "id": "jumps", "entry": {"event": "go"},
    "steps": [
        {"wait_for": {"event": "click", "timeout": "1h"}, "on_event": "clicked",
         "on_timeout": "silent"},
        {"send": {"template": "unreachable"}},
        {"name": "silent", "send": {"template": "silent"}},
        {"exit": True},
        {"name": "clicked", "send": {"template": "clicked"}},
        {"wait_for": {"event": "buy", "timeout": "1h"}, "on_event": "exit"},
        {"send": {"template": "buy-now"}},
    ],
})


@pytest.mark.parametrize(
    ("steps", "templates", "last"),
    [
        pytest.param([Event("go", T0), T0 + HOUR], ["silent"], ("exit", T0 + HOUR),
                     id="timeout-jumps-forward-then-exit-step"),
        pytest.param([Event("go", T0), Event("click", T0 + MIN), T0 + 3 * HOUR],
                     ["clicked", "buy-now"], ("completed", T0 + MIN + HOUR),
                     id="event-jumps-forward"),
        pytest.param([Event("go", T0), Event("click", T0 + MIN), Event("buy", T0 + 2 * MIN)],
                     ["clicked"], ("exit", T0 + 2 * MIN), id="on-event-exit"),
    ],
)
def test_forward_jumps_and_exit(steps, templates, last):
    actions = run_brief(JUMPS, steps)
    assert _templates(actions) == templates
    assert (actions[-1][4], actions[-1][3]) == last

"""Who enters: one active instance per key, re-entry after the cooldown, and entry conditions
over recent signals, each at the edges of its window (now - within, now]."""

import pytest
from engine_tables import DAY, HOUR, MIN, T0, rules_of, run_brief

from server.engine import Event

NUDGE = rules_of({
    "id": "nudge",
    "entry": {"event": "go"},
    "steps": [{"wait": "10m"}, {"send": {"template": "nudge"}}],
    "cooldown": "1h",
})
END = T0 + 10 * MIN  # the first instance sends and completes here


def _entries(actions):
    return [a[3] for a in actions if a[0] == "enter"]


@pytest.mark.parametrize(
    ("steps", "entered_at"),
    [
        pytest.param([Event("go", T0), Event("go", T0 + MIN)], [T0], id="while-active-nothing"),
        pytest.param([Event("go", T0), Event("go", T0)], [T0], id="same-instant-nothing"),
        pytest.param([Event("go", T0), Event("go", END)], [T0],
                     id="at-end-instant-event-comes-before-timer"),
        pytest.param([Event("go", T0), END, Event("go", END + HOUR - 1)], [T0],
                     id="1ms-before-cooldown-over"),
        pytest.param([Event("go", T0), END, Event("go", END + HOUR)], [T0, END + HOUR],
                     id="exactly-at-end-plus-cooldown"),
        pytest.param([Event("go", T0), Event("go", END + HOUR)], [T0, END + HOUR],
                     id="end-fired-by-receive-then-cooldown-over"),
        pytest.param([Event("go", T0), END + 2 * HOUR, Event("go", END + 2 * HOUR)],
                     [T0, END + 2 * HOUR], id="after-compaction"),
    ],
)
def test_one_instance_at_a_time_and_cooldown_after_end(steps, entered_at):
    assert _entries(run_brief(NUDGE, steps)) == entered_at


def test_cooldown_counts_from_an_exit_on_end():
    rules = rules_of({
        "id": "nudge", "entry": {"event": "go"}, "exit_on": [{"event": "stop"}],
        "steps": [{"wait": "1d"}, {"send": {"template": "nudge"}}], "cooldown": "1h",
    })
    stop = T0 + 5 * MIN
    assert _entries(run_brief(rules, [Event("go", T0), Event("stop", stop),
                                      Event("go", stop + HOUR - 1)])) == [T0]
    assert _entries(run_brief(rules, [Event("go", T0), Event("stop", stop),
                                      Event("go", stop + HOUR)])) == [T0, stop + HOUR]


def _interest(condition: dict[str, object]) -> object:
    return rules_of({
        "id": "interest",
        "entry": {"event": "page_view", "where": {"path": "/product/*"}, "if": [condition]},
        "steps": [{"wait": "2h"}, {"send": {"template": "interest"}}],
    })


SCROLL = {"event": "scroll", "where": {"path": "/product/*", "depth_pct": {"gte": 70}},
          "within": "30m"}
DWELL = {"event": "dwell", "where": {"path": "/product/*", "engaged_ms": {"gte": 120_000}},
         "within": "30m"}
HOVER = {"event": "hover", "where": {"target": "product:*", "ms": {"gte": 800}}, "within": "30m"}
VISITS = {"event": "page_view", "where": {"path": "/product/*"}, "within": "1d", "at_least": 3}
NO_PURCHASE = {"event": "purchase", "within": "30d", "at_most": 0}
NOW = T0 + 40 * DAY
VIEW = Event("page_view", NOW, {"path": "/product/laptop"})


def _scroll(at: int, depth: int, path: str = "/product/laptop") -> Event:
    return Event("scroll", at, {"path": path, "depth_pct": depth})


@pytest.mark.parametrize(
    ("condition", "history", "enters"),
    [
        pytest.param(SCROLL, [_scroll(NOW - 30 * MIN + 1, 70)], True, id="scroll-70-inside"),
        pytest.param(SCROLL, [_scroll(NOW - 30 * MIN, 90)], False, id="scroll-at-window-start"),
        pytest.param(SCROLL, [_scroll(NOW, 70)], True, id="scroll-at-now"),
        pytest.param(SCROLL, [_scroll(NOW - MIN, 69)], False, id="scroll-69"),
        pytest.param(SCROLL, [_scroll(NOW - MIN, "85")], True, id="scroll-depth-as-text"),
        pytest.param(SCROLL, [_scroll(NOW - MIN, 95, "/blog/laptops")], False,
                     id="scroll-not-a-product"),
        pytest.param(SCROLL, [], False, id="no-scroll"),
        pytest.param(DWELL, [Event("dwell", NOW - 29 * MIN,
                                   {"path": "/product/x", "engaged_ms": 120_000})],
                     True, id="dwell-120s"),
        pytest.param(DWELL, [Event("dwell", NOW - MIN,
                                   {"path": "/product/x", "engaged_ms": 119_999})],
                     False, id="dwell-just-short"),
        pytest.param(DWELL, [Event("dwell", NOW - 30 * MIN,
                                   {"path": "/product/x", "engaged_ms": 300_000})],
                     False, id="dwell-at-window-start"),
        pytest.param(HOVER, [Event("hover", NOW - MIN, {"target": "product:42", "ms": 800})],
                     True, id="hover-800ms"),
        pytest.param(HOVER, [Event("hover", NOW - MIN, {"target": "product:42", "ms": 799})],
                     False, id="hover-799ms"),
        pytest.param(HOVER, [Event("hover", NOW - MIN, {"target": "nav:home", "ms": 5000})],
                     False, id="hover-other-target"),
        pytest.param(VISITS, [Event("page_view", NOW - DAY + 1, {"path": "/product/a"}),
                              Event("page_view", NOW - HOUR, {"path": "/product/b"})],
                     True, id="third-view-within-1d"),
        pytest.param(VISITS, [Event("page_view", NOW - DAY, {"path": "/product/a"}),
                              Event("page_view", NOW - HOUR, {"path": "/product/b"})],
                     False, id="one-of-three-at-window-start"),
        pytest.param(VISITS, [Event("page_view", NOW - HOUR, {"path": "/product/a"})],
                     False, id="only-two-views"),
        pytest.param(VISITS, [Event("page_view", NOW - HOUR, {"path": "/cart"}),
                              Event("page_view", NOW - MIN, {"path": "/"})],
                     False, id="views-not-of-products"),
        pytest.param(NO_PURCHASE, [], True, id="never-bought"),
        pytest.param(NO_PURCHASE, [Event("purchase", NOW - 30 * DAY, {})], True,
                     id="purchase-at-window-start-is-outside"),
        pytest.param(NO_PURCHASE, [Event("purchase", NOW - 30 * DAY + 1, {})], False,
                     id="purchase-1ms-inside"),
        pytest.param(NO_PURCHASE, [Event("purchase", NOW, {})], False, id="purchase-now"),
    ],
)
def test_entry_conditions_at_window_edges(condition, history, enters):
    actions = run_brief(_interest(condition), [*history, VIEW])
    assert _entries(actions) == ([NOW] if enters else [])


def test_all_conditions_of_the_entry_must_hold():
    rules = _interest(SCROLL)
    both = rules_of({
        "id": "interest",
        "entry": {"event": "page_view", "where": {"path": "/product/*"}, "if": [SCROLL, DWELL]},
        "steps": [{"send": {"template": "interest"}}],
    })
    scrolled = _scroll(NOW - MIN, 80)
    dwelled = Event("dwell", NOW - MIN, {"path": "/product/x", "engaged_ms": 200_000})
    assert _entries(run_brief(rules, [scrolled, VIEW])) == [NOW]
    assert _entries(run_brief(both, [scrolled, VIEW])) == []
    assert _entries(run_brief(both, [scrolled, dwelled, VIEW])) == [NOW]


def test_entry_where_filters_the_entry_event():
    rules = _interest(NO_PURCHASE)
    assert _entries(run_brief(rules, [Event("page_view", NOW, {"path": "/blog/x"})])) == []
    assert _entries(run_brief(rules, [Event("page_view", NOW, {})])) == []


REENGAGE = rules_of(
    {"id": "welcome", "entry": {"event": "signup"}, "steps": [{"send": {"template": "welcome"}}]},
    {"id": "re-engage", "entry": {"inactive": {"event": "email_open", "for": "7d",
                                               "since": "email_sent"}},
     "steps": [{"send": {"template": "we-miss-you"}}], "cooldown": "30d"},
)
WEEK = 7 * DAY


@pytest.mark.parametrize(
    ("steps", "entered_at"),
    [
        pytest.param([Event("signup", T0), T0 + WEEK - 1], [], id="1ms-before"),
        pytest.param([Event("signup", T0), T0 + WEEK], [T0 + WEEK], id="exactly-last-send-plus-7d"),
        pytest.param([Event("signup", T0), Event("page_view", T0 + WEEK + HOUR)], [T0 + WEEK],
                     id="fired-by-a-later-event"),
        pytest.param([Event("signup", T0), Event("email_open", T0 + 3 * DAY), T0 + 30 * DAY], [],
                     id="open-in-between-cancels"),
        pytest.param([Event("signup", T0), Event("email_open", T0 + WEEK), T0 + 30 * DAY], [],
                     id="open-exactly-at-deadline-cancels"),
        pytest.param([Event("signup", T0), Event("signup", T0 + 2 * DAY), T0 + 2 * DAY + WEEK - 1],
                     [], id="later-send-moves-deadline"),
        pytest.param([Event("signup", T0), Event("signup", T0 + 2 * DAY), T0 + 2 * DAY + WEEK],
                     [T0 + 2 * DAY + WEEK], id="later-send-re-arms"),
        pytest.param([Event("signup", T0), Event("email_open", T0 + DAY),
                      Event("signup", T0 + 2 * DAY), T0 + 2 * DAY + WEEK],
                     [T0 + 2 * DAY + WEEK], id="send-after-open-re-arms"),
        pytest.param([Event("page_view", T0), T0 + 30 * DAY], [], id="never-mailed-never-inactive"),
    ],
)
def test_inactivity_entry(steps, entered_at):
    actions = run_brief(REENGAGE, steps)
    assert [a[3] for a in actions if a[:2] == ("enter", "re-engage")] == entered_at


def test_inactivity_counts_only_emails_actually_sent():
    """A suppressed send (here: an unverified user) is no email the user could have opened."""
    actions = run_brief(REENGAGE, [Event("signup", T0), T0 + 30 * DAY], mailable=False)
    assert actions[1][0] == "suppress"
    assert [a for a in actions if a[:2] == ("enter", "re-engage")] == []
